// What ONNX Runtime's quantizer writes for int4 weights below opset 21: int4 initializers (a data type
// Debian's libonnx does not know, so its checker is skipped, not failed) read by com.microsoft's
// DequantizeLinear, which runs as ONNX's.
#include <gtest/gtest.h>

#include "onnx/onnx_pb.h"
#include "runtime/core/narrow_types.h"
#include "tunnx/model.h"
#include "tunnx/session.h"

namespace tunnx {
namespace {

TEST(ContribQuantize, Int4WeightsThroughMicrosoftDequantizeLinearAtOpset17) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  onnx::OperatorSetIdProto* ms = m.add_opset_import();
  ms->set_domain("com.microsoft");
  ms->set_version(1);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("g");
  onnx::TensorProto* w = g->add_initializer();  // int4 [3]: -8, 7, -1 packed low nibble first
  w->set_name("w");
  w->set_data_type(static_cast<int32_t>(DataType::kInt4));  // not in Debian's onnx.proto
  w->add_dims(3);
  w->set_raw_data(std::string("\x78\x0f", 2));
  onnx::TensorProto* scale = g->add_initializer();
  scale->set_name("scale");
  scale->set_data_type(onnx::TensorProto::FLOAT);
  scale->add_float_data(0.5f);
  onnx::NodeProto* dq = g->add_node();
  dq->set_name("dq");
  dq->set_op_type("DequantizeLinear");
  dq->set_domain("com.microsoft");
  dq->add_input("w");
  dq->add_input("scale");
  dq->add_output("y");
  onnx::ValueInfoProto* y = g->add_output();
  y->set_name("y");
  y->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);

  Model model = Model::load_from_bytes(m.SerializeAsString(), {});
  Session session(model);
  const Tensor out = session.run({}).at("y").tensor();
  ASSERT_EQ(out.dims(), (std::vector<int64_t>{3}));
  EXPECT_EQ(std::vector<float>(out.data_as<float>(), out.data_as<float>() + 3), (std::vector<float>{-4.f, 3.5f, -0.5f}));
}

}  // namespace
}  // namespace tunnx
