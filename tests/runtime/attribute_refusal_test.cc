// No kernel ignores an attribute: every node of ONNX's own node tests (Debian's libonnx-testdata), given
// one attribute no spec defines, must be refused when the session is planned, naming the node's op
// and the attribute. The walk covers every kernel those tests reach, at optimization levels 0 and 2
// (where fusing passes must not drop what they do not understand).
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "onnx/onnx_pb.h"
#include "tunnx/model.h"
#include "tunnx/session.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;

const fs::path kNodeTests = fs::path(TUNNX_TESTDATA_DIR) / "node";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// Whether a session of `bytes` can be planned; `why` gets the error. ONNX's checker (which would
// refuse the attribute too, but only knows opsets up to 17) is off: the kernels must refuse it alone.
bool plans(const std::string& bytes, const fs::path& dir, int level, std::string& why) {
  try {
    LoadOptions load;
    load.run_onnx_checker = false;
    Model model = Model::load_from_bytes(bytes, dir, load);
    SessionOptions options;
    options.optimization_level = level;
    Session session(model, options);
    return true;
  } catch (const Error& e) {
    why = e.what();
    return false;
  }
}

void walk(int level) {
  ASSERT_TRUE(fs::is_directory(kNodeTests)) << kNodeTests;
  std::set<std::string> ops_covered;
  std::vector<std::string> not_refused;
  int probes = 0;
  for (const auto& entry : fs::directory_iterator(kNodeTests)) {
    const fs::path model_path = entry.path() / "model.onnx";
    if (!fs::exists(model_path)) continue;
    const std::string bytes = read_file(model_path);
    onnx::ModelProto proto;
    std::string why;
    if (!proto.ParseFromString(bytes) || !plans(bytes, entry.path(), level, why)) continue;  // not planned as is
    for (int i = 0; i < proto.graph().node_size(); ++i) {
      onnx::ModelProto probed = proto;
      onnx::NodeProto* node = probed.mutable_graph()->mutable_node(i);
      onnx::AttributeProto* extra = node->add_attribute();
      extra->set_name("tunnx_probe");
      extra->set_type(onnx::AttributeProto::INT);
      extra->set_i(1);
      ++probes;
      const std::string op = (node->domain().empty() ? "" : node->domain() + ":") + node->op_type();
      // The message names the node's op, or what a pass made of it (Conv runs as FusedConv at level 2).
      if (plans(probed.SerializeAsString(), entry.path(), level, why) ||
          why.find("attribute 'tunnx_probe' is not implemented by") == std::string::npos ||
          (level == 0 && why.find("(" + node->op_type() + "): ") == std::string::npos)) {
        not_refused.push_back(entry.path().filename().string() + " node " + std::to_string(i) + " " + op + ": " +
                              (why.empty() ? "planned" : why));
      } else {
        ops_covered.insert(op);
      }
      why.clear();
    }
  }
  std::string examples;
  for (size_t i = 0; i < not_refused.size() && i < 20; ++i) examples += "\n  " + not_refused[i];
  EXPECT_TRUE(not_refused.empty()) << not_refused.size() << " of " << probes << " probes were not refused:" << examples;
  // Debian's node tests reach well over a hundred kernels; a walk that covers few has lost its data.
  EXPECT_GT(ops_covered.size(), 150u) << "ops covered: " << ops_covered.size();
}

// SpaceToDepth's `mode` exists from opset 28; on an older node it used to be ignored (DCR given for CRD).
TEST(AttributeRefusal, AnAttributeFromALaterOpsetIsRefusedNamingIt) {
  auto model_with_mode = [](int64_t opset) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(opset);
    onnx::GraphProto* g = m.mutable_graph();
    g->set_name("g");
    for (const char* name : {"x", "y"}) {
      onnx::ValueInfoProto* v = name[0] == 'x' ? g->add_input() : g->add_output();
      v->set_name(name);
      v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    }
    for (int64_t d : {1, 4, 2, 2}) g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(d);
    onnx::NodeProto* node = g->add_node();
    node->set_name("s2d");
    node->set_op_type("SpaceToDepth");
    node->add_input("x");
    node->add_output("y");
    onnx::AttributeProto* a = node->add_attribute();
    a->set_name("blocksize");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(2);
    a = node->add_attribute();
    a->set_name("mode");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s("CRD");
    return m.SerializeAsString();
  };
  std::string why;
  EXPECT_FALSE(plans(model_with_mode(13), {}, 0, why));
  EXPECT_NE(why.find("node 's2d' (SpaceToDepth): attribute 'mode' is not implemented by cpu/reference/SpaceToDepth (opset 13)"),
            std::string::npos)
      << why;
  why.clear();
  EXPECT_TRUE(plans(model_with_mode(28), {}, 0, why)) << why;
}

// Conv -> Relu, the Relu carrying an attribute no spec defines: fused at level 2 it would vanish into
// FusedConv; the pass leaves such a node alone, so its kernel refuses it.
TEST(AttributeRefusal, AFusionNeverSwallowsAnUnknownAttribute) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("g");
  auto add_value = [](onnx::ValueInfoProto* v, const char* name, std::vector<int64_t> dims) {
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) v->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(d);
  };
  add_value(g->add_input(), "x", {1, 2, 4, 4});
  add_value(g->add_output(), "y", {1, 2, 4, 4});
  onnx::TensorProto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : {2, 2, 1, 1}) w->add_dims(d);
  for (int i = 0; i < 4; ++i) w->add_float_data(0.5f);
  onnx::NodeProto* conv = g->add_node();
  conv->set_op_type("Conv");
  conv->add_input("x");
  conv->add_input("w");
  conv->add_output("c");
  onnx::NodeProto* relu = g->add_node();
  relu->set_name("relu");
  relu->set_op_type("Relu");
  relu->add_input("c");
  relu->add_output("y");
  onnx::AttributeProto* extra = relu->add_attribute();
  extra->set_name("tunnx_probe");
  extra->set_type(onnx::AttributeProto::INT);
  extra->set_i(1);
  for (int level : {0, 2}) {
    std::string why;
    EXPECT_FALSE(plans(m.SerializeAsString(), {}, level, why)) << "level " << level;
    // At level 2 the channels-last pass runs the Relu as 'relu/nhwc'.
    EXPECT_NE(why.find("node 'relu"), std::string::npos) << "level " << level << ": " << why;
    EXPECT_NE(why.find("(Relu): attribute 'tunnx_probe' is not implemented by"), std::string::npos)
        << "level " << level << ": " << why;
  }
  m.mutable_graph()->mutable_node(1)->clear_attribute();
  std::string why;
  EXPECT_TRUE(plans(m.SerializeAsString(), {}, 2, why)) << why;
}

TEST(AttributeRefusal, EveryKernelOfTheNodeTestsRefusesAnUnknownAttribute) { walk(0); }

TEST(AttributeRefusal, FusingPassesKeepUnknownAttributesVisible) { walk(2); }

}  // namespace
}  // namespace tunnx
