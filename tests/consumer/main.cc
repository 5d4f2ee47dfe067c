// Loads the model named on the command line with the installed libtunnx, prints how many trainable
// parameter elements it has ("trainable parameter elements: N") and, given an input .npy, runs it in
// a Session and prints the predicted class per row ("predicted: 6 6 6 2").
#include <algorithm>
#include <cstdint>
#include <iostream>

#include <tunnx/tunnx.h>

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::cerr << "usage: " << argv[0] << " MODEL.onnx [INPUT.npy]\n";
    return 2;
  }
  try {
    tunnx::Model model = tunnx::Model::load(argv[1]);
    int64_t elements = 0;
    for (const auto& [name, tensor] : model.named_parameters())
      if (model.requires_grad(name)) elements += tensor.numel();
    std::cout << "tunnx " << tunnx::version() << "\n";
    std::cout << "trainable parameter elements: " << elements << "\n";
    if (argc == 3) {
      tunnx::Session session(model);
      tunnx::NamedValues out = session.run({{session.input_names().at(0), tunnx::load_npy(argv[2])}});
      const tunnx::Tensor& logits = out.at(session.output_names().at(0)).tensor();
      const int64_t classes = logits.dims().at(1);
      std::cout << "predicted:";
      for (int64_t row = 0; row < logits.dims().at(0); ++row) {
        const float* p = logits.data_as<float>() + row * classes;
        std::cout << " " << (std::max_element(p, p + classes) - p);
      }
      std::cout << "\n";
    }
  } catch (const tunnx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
