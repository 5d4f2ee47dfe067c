// Loads the model named on the command line with the installed libtunnx and prints how many
// trainable parameter elements it has: "trainable parameter elements: N".
#include <cstdint>
#include <iostream>

#include <tunnx/tunnx.h>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " MODEL.onnx\n";
    return 2;
  }
  try {
    tunnx::Model model = tunnx::Model::load(argv[1]);
    int64_t elements = 0;
    for (const auto& [name, tensor] : model.named_parameters())
      if (model.requires_grad(name)) elements += tensor.numel();
    std::cout << "tunnx " << tunnx::version() << "\n";
    std::cout << "trainable parameter elements: " << elements << "\n";
  } catch (const tunnx::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
