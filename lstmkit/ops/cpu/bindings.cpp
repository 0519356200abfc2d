// Python bindings of the fused loops: lstmkit/ops/cpu/__init__.py builds and loads this module.
#include <torch/extension.h>

#include "common.h"

namespace lstmkit {
bool mkl_gemm_available();
bool onednn_gemm_available();
std::vector<Tensor> lstm_forward_steps(Tensor, Tensor, Tensor, Tensor, OptTensor, OptTensor, OptTensor, OptTensor,
                                       OptTensor, OptTensor, OptTensor, OptTensor, OptTensor, OptTensor, OptTensor,
                                       OptTensor, std::string, std::string, std::string, bool);
std::vector<Tensor> lstm_forward_input_steps(Tensor, Tensor, OptTensor, OptTensor, Tensor, Tensor, Tensor, OptTensor,
                                             OptTensor, OptTensor, OptTensor, OptTensor, OptTensor, OptTensor,
                                             OptTensor, OptTensor, OptTensor, std::string, std::string, std::string,
                                             bool, bool, OptTensor);
bool input_fusion_fits(const Tensor&, const Tensor&, const OptTensor&, const std::string&, at::ScalarType);
std::vector<Tensor> lstm_backward_steps(OptTensor, Tensor, Tensor, Tensor, Tensor, OptTensor, Tensor, OptTensor,
                                        OptTensor, OptTensor, OptTensor, OptTensor, OptTensor, Tensor, OptTensor,
                                        OptTensor, OptTensor, OptTensor, OptTensor, OptTensor, OptTensor, OptTensor,
                                        OptTensor, std::string, std::string, std::string, OptTensor, OptTensor,
                                        OptTensor, OptTensor, bool, OptTensor);
std::vector<Tensor> lstm_backward_chunks(OptTensor, Tensor, Tensor, std::vector<OptTensor>, Tensor, OptTensor,
                                         OptTensor, OptTensor, OptTensor, OptTensor, OptTensor, OptTensor, OptTensor,
                                         OptTensor, std::string, std::string, std::string, Tensor, Tensor, bool);
std::vector<Tensor> gru_backward_chunks(OptTensor, Tensor, std::vector<Tensor>, Tensor, OptTensor, OptTensor,
                                        OptTensor, std::string, std::string, Tensor, Tensor, bool);
std::vector<Tensor> gru_forward_steps(Tensor, Tensor, Tensor, OptTensor, OptTensor, OptTensor, OptTensor,
                                      std::string, std::string, bool);
std::vector<Tensor> gru_forward_input_steps(Tensor, Tensor, OptTensor, Tensor, Tensor, OptTensor, OptTensor,
                                            OptTensor, OptTensor, std::string, std::string, bool, bool, OptTensor);
std::vector<Tensor> gru_backward_steps(OptTensor, Tensor, Tensor, Tensor, Tensor, Tensor, OptTensor, OptTensor,
                                       OptTensor, std::string, std::string, OptTensor, OptTensor, OptTensor, bool,
                                       OptTensor);
std::tuple<Tensor, Tensor, Tensor> lstm_step(const std::string&, const std::string&, const std::string&, Tensor, Tensor,
                                             Tensor, Tensor, Tensor, OptTensor, OptTensor, OptTensor, OptTensor,
                                             OptTensor, OptTensor, OptTensor, OptTensor);
std::tuple<Tensor, Tensor> gru_step(const std::string&, const std::string&, Tensor, Tensor, Tensor, Tensor, OptTensor,
                                    OptTensor);
Tensor sum_rows(Tensor, OptTensor);
Tensor bernoulli_mask(std::vector<int64_t>, double, int64_t, const Tensor&);
}  // namespace lstmkit

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lstmkit's fused CPU loops for the LSTM family and the GRU";
  m.def("lstm_forward_steps", &lstmkit::lstm_forward_steps);
  m.def("lstm_forward_input_steps", &lstmkit::lstm_forward_input_steps,
        "lstm_forward_steps with the input projection inside the loop (the team loops' cells)");
  m.def("input_fusion_fits", [](const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr,
                                const std::string& cell, const at::Tensor& like) {
    return lstmkit::input_fusion_fits(w_ih, w_hh, w_hr, cell, like.scalar_type());
  }, "whether lstm_forward_input_steps runs this cell with these weights for tensors like `like`");
  m.def("lstm_backward_steps", &lstmkit::lstm_backward_steps,
        "the backward loop; given x, w_ih and h_in (and with a projection h_core), the team loops also "
        "return dx, dW_ih, dW_hh (and dW_hr) made in it (where their tiles fit)");
  m.def("lstm_backward_chunks", &lstmkit::lstm_backward_chunks,
        "lstm_backward_steps after a forward that ran the batch in chunks: each chunk's results in turn");
  m.def("gru_forward_steps", &lstmkit::gru_forward_steps);
  m.def("gru_forward_input_steps", &lstmkit::gru_forward_input_steps,
        "gru_forward_steps with the input projection inside the loop");
  m.def("gru_backward_steps", &lstmkit::gru_backward_steps,
        "the backward loop; given x, w_ih and h_in, it also returns dx, dW_ih and dW_hh made in it "
        "(where their tiles fit)");
  m.def("gru_backward_chunks", &lstmkit::gru_backward_chunks,
        "gru_backward_steps after a forward that ran the batch in chunks: each chunk's results in turn");
  m.def("lstm_step", &lstmkit::lstm_step,
        "(cell, activation, recurrent_activation, x, h, c, *weights): one LSTM step, nothing stored: (h', c', output)");
  m.def("gru_step", &lstmkit::gru_step,
        "(activation, recurrent_activation, x, h, *weights): one GRU step, nothing stored: (h', output)");
  m.def("sum_rows", &lstmkit::sum_rows, "sum over rows of a [N, C], or of a * b: [C]");
  m.def("bernoulli_mask", &lstmkit::bernoulli_mask, "a 0/1 mask, 1 with probability rate (counter-based draw)");
  m.def("mkl_gemm_available", &lstmkit::mkl_gemm_available, "whether the MKL sgemm inside libtorch_cpu was found");
  m.def("onednn_gemm_available", &lstmkit::onednn_gemm_available,
        "whether torch's oneDNN matmul op (mkldnn::_linear_pointwise) was found");
}
