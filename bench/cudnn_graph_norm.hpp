// cuDNN's LayerNorm and GroupNorm through the C functions of its graph (backend) API
// (cudnn_graph.h: cudnnBackendCreateDescriptor / SetAttribute / Finalize / Execute), for the cuDNN
// column of bench_norms_cuda (docs/cuda_bench.md). Host C++ over cudnn.h only; nvcc and a host
// compiler both take it.
//
// One graph per pass, each a single norm operation on float32 tensors:
//   forward (training):  x, scale, bias, epsilon (a scalar passed by value from the host)
//                        -> y, mean, inv_variance
//   backward:            x, dy, scale, mean, inv_variance -> dx, dscale, dbias
// x is [N, C, H, W] in NCHW memory; scale, bias and their gradients [1, C, 1, 1]; the statistics
// [N, G, 1, 1], one per (sample, group of C / G consecutive channels): G = 1 for LayerNorm, and
// for GroupNorm the statistics' shape is the only place the number of groups can be given (the
// norm operations have no groups attribute). NormGraph finalizes the operation graph, asks the
// engine heuristics (mode A, then the fallback list) for engine configurations, finalizes the
// first one that takes an execution plan and reports its workspace size. Every cuDNN call is
// checked: a failure throws normlab::Error naming the call (and the attribute), the status and
// cudnnGetLastErrorString's message, which bench_norms_cuda prints as its n/a reason.
//
// Written from the cuDNN 9.19 headers and documentation on a machine without a GPU: descriptor
// and operation finalization can run there, graphs, plans and execution cannot.
#pragma once

#include <cudnn.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab::bench::cudnn_graph {

/// Ensures: cuDNN's last error message in this thread with its lines joined by "; " and cut to
/// 300 characters, or "" when it has none.
inline std::string last_error_message() {
  char message[1024] = {};
  cudnnGetLastErrorString(message, sizeof message);
  std::string text;
  for (const char* c = message; *c != '\0' && text.size() < 300; ++c) {
    if (*c == '\n') {
      if (!text.empty() && c[1] != '\0') text += "; ";
    } else {
      text += *c;
    }
  }
  return text;
}

/// Ensures: returns if `status` is CUDNN_STATUS_SUCCESS, else throws normlab::Error
/// "<call> returned <status name> (<code>)[: <cuDNN's last error message>]".
inline void check(cudnnStatus_t status, const std::string& call) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  const std::string message = last_error_message();
  throw Error(normlab::detail::concat(call, " returned ", cudnnGetErrorString(status), " (",
                                      static_cast<int>(status), ")", message.empty() ? "" : ": ",
                                      message));
}

/// An attribute and its name for error messages, as Descriptor::set takes them:
/// NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_TENSOR_STRIDES).
#define NORMLAB_GRAPH_ATTRIBUTE(attribute) attribute, #attribute

/// A backend descriptor of one type, created with the object and destroyed with it. `name` says
/// which one it is ("tensor x", "execution plan") in error messages.
class Descriptor {
 public:
  Descriptor(cudnnBackendDescriptorType_t type, std::string name) : name_(std::move(name)) {
    check(cudnnBackendCreateDescriptor(type, &descriptor_),
          "cudnnBackendCreateDescriptor(" + name_ + ")");
  }
  ~Descriptor() {
    if (descriptor_ != nullptr) cudnnBackendDestroyDescriptor(descriptor_);
  }
  Descriptor(Descriptor&& other) noexcept
      : descriptor_(std::exchange(other.descriptor_, nullptr)), name_(std::move(other.name_)) {}
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  Descriptor& operator=(Descriptor&&) = delete;

  cudnnBackendDescriptor_t get() const { return descriptor_; }
  const std::string& name() const { return name_; }

  /// Requires: `values` points to `count` elements of the C type that `type` stands for.
  /// Ensures: the attribute is set, or normlab::Error names it.
  void set(cudnnBackendAttributeName_t attribute, const char* attribute_name,
           cudnnBackendAttributeType_t type, int64_t count, const void* values) {
    check(cudnnBackendSetAttribute(descriptor_, attribute, type, count, values),
          "cudnnBackendSetAttribute(" + name_ + ", " + attribute_name + ")");
  }
  /// Requires: `value` is finalized and outlives every use of this descriptor.
  void set(cudnnBackendAttributeName_t attribute, const char* attribute_name,
           const Descriptor& value) {
    const cudnnBackendDescriptor_t raw = value.get();
    set(attribute, attribute_name, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &raw);
  }
  void finalize() {
    check(cudnnBackendFinalize(descriptor_), "cudnnBackendFinalize(" + name_ + ")");
  }

 private:
  cudnnBackendDescriptor_t descriptor_ = nullptr;
  std::string name_;
};

/// The tensors' unique ids (the variant pack binds device addresses to them).
enum Uid : int64_t {
  kX = 1,
  kScale,
  kBias,
  kEpsilon,
  kY,
  kMean,
  kInvVariance,
  kDy,
  kDx,
  kDscale,
  kDbias,
};

/// What a pair of graphs normalises: x [n, c, h, w] (NCHW memory), statistics per (sample, group
/// of c / groups consecutive channels), scale and bias per channel.
struct NormGraphShape {
  cudnnBackendNormMode_t mode;  // CUDNN_LAYER_NORM (groups 1) or CUDNN_GROUP_NORM
  int64_t n, c, h, w, groups;
};

using Dims = std::array<int64_t, 4>;

/// Ensures: the strides (in elements) of a packed NCHW tensor of `dims`. When h = w = 1 they are
/// written in the channels-last form {c, 1, c, c}: the same memory (a stride of a unit dimension
/// is never used), and the form cuDNN's frontend and PyTorch give their LayerNorm graphs.
inline Dims packed_strides(const Dims& dims) {
  const int64_t c = dims[1], h = dims[2], w = dims[3];
  if (h == 1 && w == 1) return {c, 1, c, c};
  return {c * h * w, h * w, w, 1};
}

/// Ensures: a finalized float32 tensor descriptor: `dims`, packed strides, id `uid`, 16-byte
/// alignment (cudaMalloc gives 256); `by_value` for a scalar the variant pack passes by host
/// address (epsilon).
inline Descriptor tensor_descriptor(const std::string& name, Uid uid, const Dims& dims,
                                    bool by_value = false) {
  Descriptor tensor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor " + name);
  const cudnnDataType_t type = CUDNN_DATA_FLOAT;
  const Dims strides = packed_strides(dims);
  const int64_t id = uid, alignment = 16;
  tensor.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_TENSOR_DATA_TYPE), CUDNN_TYPE_DATA_TYPE, 1, &type);
  tensor.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_TENSOR_DIMENSIONS), CUDNN_TYPE_INT64, 4,
             dims.data());
  tensor.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_TENSOR_STRIDES), CUDNN_TYPE_INT64, 4,
             strides.data());
  tensor.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_TENSOR_UNIQUE_ID), CUDNN_TYPE_INT64, 1, &id);
  tensor.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT), CUDNN_TYPE_INT64, 1,
             &alignment);
  if (by_value) {
    const bool value = true;
    tensor.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_TENSOR_IS_BY_VALUE), CUDNN_TYPE_BOOLEAN, 1,
               &value);
  }
  tensor.finalize();
  return tensor;
}

/// A finalized norm operation and the tensor descriptors it refers to (kept alive with it).
struct NormOperation {
  std::vector<Descriptor> tensors;
  Descriptor operation;
};

/// Finds the tensor descriptor called "tensor <name>" in `tensors`.
inline const Descriptor& tensor_named(const std::vector<Descriptor>& tensors,
                                      const std::string& name) {
  for (const Descriptor& t : tensors)
    if (t.name() == "tensor " + name) return t;
  throw Error("cudnn_graph: no tensor " + name);
}

inline const char* mode_name(cudnnBackendNormMode_t mode) {
  return mode == CUDNN_LAYER_NORM ? "CUDNN_LAYER_NORM" : "CUDNN_GROUP_NORM";
}

/// Requires: s.groups >= 1 divides s.c. Ensures: the finalized training forward of `s`:
/// y = scale * (x - mean) * inv_variance + bias, mean and inv_variance = 1 / sqrt(var + epsilon)
/// saved per (sample, group).
inline NormOperation norm_forward_operation(const NormGraphShape& s) {
  std::vector<Descriptor> tensors;
  const Dims x_dims = {s.n, s.c, s.h, s.w}, channel = {1, s.c, 1, 1},
             statistics = {s.n, s.groups, 1, 1};
  tensors.push_back(tensor_descriptor("x", kX, x_dims));
  tensors.push_back(tensor_descriptor("scale", kScale, channel));
  tensors.push_back(tensor_descriptor("bias", kBias, channel));
  tensors.push_back(tensor_descriptor("epsilon", kEpsilon, {1, 1, 1, 1}, true));
  tensors.push_back(tensor_descriptor("y", kY, x_dims));
  tensors.push_back(tensor_descriptor("mean", kMean, statistics));
  tensors.push_back(tensor_descriptor("inv_variance", kInvVariance, statistics));

  Descriptor op(CUDNN_BACKEND_OPERATION_NORM_FORWARD_DESCRIPTOR,
                std::string("norm forward operation (") + mode_name(s.mode) + ")");
  const cudnnBackendNormMode_t mode = s.mode;
  const cudnnBackendNormFwdPhase_t phase = CUDNN_NORM_FWD_TRAINING;
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_MODE), CUDNN_TYPE_NORM_MODE, 1,
         &mode);
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_PHASE), CUDNN_TYPE_NORM_FWD_PHASE, 1,
         &phase);
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_XDESC), tensor_named(tensors, "x"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_SCALE_DESC),
         tensor_named(tensors, "scale"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_BIAS_DESC),
         tensor_named(tensors, "bias"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_EPSILON_DESC),
         tensor_named(tensors, "epsilon"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_YDESC), tensor_named(tensors, "y"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_MEAN_DESC),
         tensor_named(tensors, "mean"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_FWD_INV_VARIANCE_DESC),
         tensor_named(tensors, "inv_variance"));
  op.finalize();
  return {std::move(tensors), std::move(op)};
}

/// Requires: as norm_forward_operation. Ensures: the finalized backward of `s` from the saved
/// statistics: dx, dscale = sum of dy * x_hat, dbias = sum of dy (over samples and positions).
inline NormOperation norm_backward_operation(const NormGraphShape& s) {
  std::vector<Descriptor> tensors;
  const Dims x_dims = {s.n, s.c, s.h, s.w}, channel = {1, s.c, 1, 1},
             statistics = {s.n, s.groups, 1, 1};
  tensors.push_back(tensor_descriptor("x", kX, x_dims));
  tensors.push_back(tensor_descriptor("dy", kDy, x_dims));
  tensors.push_back(tensor_descriptor("scale", kScale, channel));
  tensors.push_back(tensor_descriptor("mean", kMean, statistics));
  tensors.push_back(tensor_descriptor("inv_variance", kInvVariance, statistics));
  tensors.push_back(tensor_descriptor("dx", kDx, x_dims));
  tensors.push_back(tensor_descriptor("dscale", kDscale, channel));
  tensors.push_back(tensor_descriptor("dbias", kDbias, channel));

  Descriptor op(CUDNN_BACKEND_OPERATION_NORM_BACKWARD_DESCRIPTOR,
                std::string("norm backward operation (") + mode_name(s.mode) + ")");
  const cudnnBackendNormMode_t mode = s.mode;
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_MODE), CUDNN_TYPE_NORM_MODE, 1,
         &mode);
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_XDESC), tensor_named(tensors, "x"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_DYDESC),
         tensor_named(tensors, "dy"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_SCALE_DESC),
         tensor_named(tensors, "scale"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_MEAN_DESC),
         tensor_named(tensors, "mean"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_INV_VARIANCE_DESC),
         tensor_named(tensors, "inv_variance"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_DXDESC),
         tensor_named(tensors, "dx"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_DSCALE_DESC),
         tensor_named(tensors, "dscale"));
  op.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATION_NORM_BWD_DBIAS_DESC),
         tensor_named(tensors, "dbias"));
  op.finalize();
  return {std::move(tensors), std::move(op)};
}

/// One norm operation made executable on a device: its operation graph, the engine configuration
/// chosen by the heuristics, the execution plan and, once bound, the variant pack.
class NormGraph {
 public:
  /// Requires: `handle` is a live cuDNN handle on the device the graph will run on.
  /// Ensures: a finalized plan from the first engine configuration that takes one, trying
  /// heuristics mode A, then the fallback list; else throws normlab::Error saying why (the
  /// failing call, or "no engine supports this graph" with each mode's first refusal).
  NormGraph(cudnnHandle_t handle, NormOperation operation)
      : handle_(handle),
        operation_(std::move(operation)),
        graph_(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR,
               "operation graph of the " + operation_.operation.name()) {
    const cudnnBackendDescriptor_t ops[] = {operation_.operation.get()};
    graph_.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATIONGRAPH_OPS),
               CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, ops);
    // Marked deprecated in 9.19's header (its replacement: a CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR)
    // but still accepted; every cuDNN 8 and 9 release takes the handle.
    graph_.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_OPERATIONGRAPH_HANDLE), CUDNN_TYPE_HANDLE, 1,
               &handle_);
    graph_.finalize();

    std::string refusals;
    for (const auto& [mode, mode_label] : {std::pair{CUDNN_HEUR_MODE_A, "heuristics mode A"},
                                           std::pair{CUDNN_HEUR_MODE_FALLBACK, "fallback list"}}) {
      std::string refusal;
      try {
        if (plan_from_heuristics(mode, mode_label, &refusal)) return;
      } catch (const Error& e) {
        refusal = e.what();
      }
      refusals += std::string(refusals.empty() ? "" : "; ") + mode_label + ": " + refusal;
    }
    throw Error("no engine supports this graph (" + refusals + ")");
  }
  NormGraph(const NormGraph&) = delete;
  NormGraph& operator=(const NormGraph&) = delete;

  int64_t workspace_bytes() const { return workspace_bytes_; }

  /// Requires: `bindings` gives, for every tensor of the operation, its uid and address (device
  /// memory; for epsilon the host address of a float that outlives the graph), `workspace` holds
  /// workspace_bytes() bytes of device memory (may be null for 0). Ensures: a finalized variant
  /// pack for execute().
  void bind(const std::vector<std::pair<Uid, void*>>& bindings, void* workspace) {
    std::vector<int64_t> uids;
    std::vector<void*> pointers;
    for (const auto& [uid, pointer] : bindings) {
      uids.push_back(uid);
      pointers.push_back(pointer);
    }
    Descriptor pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR,
                    "variant pack of the " + operation_.operation.name());
    pack.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS), CUDNN_TYPE_INT64,
             static_cast<int64_t>(uids.size()), uids.data());
    pack.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS), CUDNN_TYPE_VOID_PTR,
             static_cast<int64_t>(pointers.size()), pointers.data());
    pack.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_VARIANT_PACK_WORKSPACE), CUDNN_TYPE_VOID_PTR, 1,
             &workspace);
    pack.finalize();
    variant_pack_.clear();
    variant_pack_.push_back(std::move(pack));
  }

  /// Requires: bind() ran. Ensures: the operation is queued on the handle's stream.
  void execute() const {
    NORMLAB_CHECK(!variant_pack_.empty(), "cudnn_graph: execute() before bind()");
    check(cudnnBackendExecute(handle_, plan_.front().get(), variant_pack_.front().get()),
          "cudnnBackendExecute(" + operation_.operation.name() + ")");
  }

 private:
  /// Ensures: true with plan_ and workspace_bytes_ set from the first of `mode`'s
  /// engine configurations that finalizes an execution plan; false with `refusal` saying why
  /// none did. Throws normlab::Error when the heuristics themselves fail.
  bool plan_from_heuristics(cudnnBackendHeurMode_t mode, const char* mode_label,
                            std::string* refusal) {
    Descriptor heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR,
                          std::string("engine heuristics (") + mode_label + ")");
    heuristics.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH), graph_);
    heuristics.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_ENGINEHEUR_MODE), CUDNN_TYPE_HEUR_MODE, 1,
                   &mode);
    heuristics.finalize();
    int64_t count = 0;
    check(
        cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
        "cudnnBackendGetAttribute(" + heuristics.name() + ", CUDNN_ATTR_ENGINEHEUR_RESULTS count)");
    if (count <= 0) {
      *refusal = "no engine configuration";
      return false;
    }
    std::vector<Descriptor> configs;
    std::vector<cudnnBackendDescriptor_t> raw;
    for (int64_t i = 0; i < count; ++i) {
      configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR,
                           "engine configuration " + std::to_string(i) + " (" + mode_label + ")");
      raw.push_back(configs.back().get());
    }
    int64_t returned = 0;
    check(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                   CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, raw.data()),
          "cudnnBackendGetAttribute(" + heuristics.name() + ", CUDNN_ATTR_ENGINEHEUR_RESULTS)");
    std::string first_failure = "the heuristics returned none";
    for (int64_t i = 0; i < returned && i < count; ++i) {
      try {
        Descriptor plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR,
                        "execution plan of " + configs[i].name());
        plan.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_EXECUTION_PLAN_HANDLE), CUDNN_TYPE_HANDLE, 1,
                 &handle_);
        plan.set(NORMLAB_GRAPH_ATTRIBUTE(CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG), configs[i]);
        plan.finalize();
        int64_t bytes = 0, got = 0;
        check(cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                       CUDNN_TYPE_INT64, 1, &got, &bytes),
              "cudnnBackendGetAttribute(" + plan.name() +
                  ", CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)");
        workspace_bytes_ = bytes;
        config_.push_back(std::move(configs[i]));
        plan_.push_back(std::move(plan));
        return true;
      } catch (const Error& e) {
        if (i == 0) first_failure = e.what();
      }
    }
    *refusal = std::to_string(returned) +
               " configuration(s), none finalized an execution plan; the first: " + first_failure;
    return false;
  }

  cudnnHandle_t handle_;
  NormOperation operation_;
  Descriptor graph_;
  // At most one each (a vector, as Descriptor has no empty state).
  std::vector<Descriptor> config_, plan_, variant_pack_;
  int64_t workspace_bytes_ = 0;
};

}  // namespace normlab::bench::cudnn_graph
