// The emulator's engine: one launch at a time, one block at a time, each CUDA thread a fiber.
//
// A block's threads are Boost.Context fibers run by a scheduler on the calling OS thread. A
// fiber runs until it reaches __syncthreads(), a warp collective or the end of the kernel. When
// no thread can run, the scheduler releases what can complete: the barrier, once every thread
// of the block waits at the same __syncthreads(); a warp collective, once every non-exited lane
// named in its mask waits at a collective of the same kind, mask and width. If nothing can
// complete, the block is stuck: the scheduler explains why (divergent barrier, mismatched
// collectives, deadlock), unwinds every fiber and throws Error.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/context/fiber.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <numeric>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "normlab/cuda_emu/error.hpp"
#include "normlab/cuda_emu/language.hpp"
#include "normlab/cuda_emu/schedule.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define NORMLAB_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NORMLAB_EMU_ASAN 1
#endif
#endif
#if defined(NORMLAB_EMU_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

// Bounds of the static shared memory section (see __shared__ in language.hpp), provided by the
// linker; weak, so that they are null in a program without static shared memory.
extern "C" unsigned char __start_normlab_emu_shared[] __attribute__((weak));
extern "C" unsigned char __stop_normlab_emu_shared[] __attribute__((weak));

namespace normlab::cuda_emu::detail {

// Limits of the emulated device: those of sm_80, the smallest of the project's targets.
inline constexpr unsigned max_threads_per_block = 1024;
inline constexpr unsigned max_block_dim[3] = {1024, 1024, 64};
inline constexpr unsigned max_grid_dim[3] = {2147483647u, 65535, 65535};
inline constexpr std::size_t default_dynamic_shared_limit = 48 * 1024;
inline constexpr std::size_t max_dynamic_shared_opt_in = 163 * 1024;
inline constexpr unsigned warp_lanes = 32;
inline constexpr unsigned char shared_poison = 0xFF;

/// Ensures: "(x,y,z)".
template <typename Extent>
std::string to_string_3d(const Extent& e) {
  return "(" + std::to_string(e.x) + "," + std::to_string(e.y) + "," + std::to_string(e.z) + ")";
}

/// Ensures: "0x" followed by eight hex digits.
inline std::string hex_mask(unsigned mask) {
  char text[11];
  std::snprintf(text, sizeof text, "0x%08x", mask);
  return text;
}

// ---------------------------------------------------------------------------------------------
// AddressSanitizer must be told about every stack switch, or it reports false stack overflows
// and use-after-return; without ASan these compile to nothing.

struct StackBounds {
  const void* bottom = nullptr;
  std::size_t size = 0;
};

/// Call right before switching to the stack `to`; `fake_stack_save` null when the current
/// fiber is finishing.
inline void asan_start_switch([[maybe_unused]] void** fake_stack_save,
                              [[maybe_unused]] const StackBounds& to) {
#if defined(NORMLAB_EMU_ASAN)
  __sanitizer_start_switch_fiber(fake_stack_save, to.bottom, to.size);
#endif
}

/// Call right after a switch landed; `from`, if not null, receives the stack that was left.
inline void asan_finish_switch([[maybe_unused]] void* fake_stack_save,
                               [[maybe_unused]] StackBounds* from) {
#if defined(NORMLAB_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack_save, from ? &from->bottom : nullptr,
                                  from ? &from->size : nullptr);
#endif
}

// ---------------------------------------------------------------------------------------------

/// Fiber stacks of `stack_bytes` above a PROT_NONE guard page (an overflow faults instead of
/// corrupting a neighbour), kept for reuse by the next block.
class StackPool {
 public:
  static constexpr std::size_t stack_bytes = 64 * 1024;

  StackPool() { free_.reserve(max_threads_per_block); }

  /// Ensures: a stack no live fiber uses. Throws std::bad_alloc if mmap fails.
  boost::context::stack_context take() {
    if (!free_.empty()) {
      const boost::context::stack_context stack = free_.back();
      free_.pop_back();
      return stack;
    }
    const std::size_t guard = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* base = mmap(nullptr, guard + stack_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    mprotect(base, guard, PROT_NONE);
    boost::context::stack_context stack;
    stack.size = stack_bytes;
    stack.sp = static_cast<char*>(base) + guard + stack_bytes;
    return stack;
  }

  /// Requires: `stack` came from take() and its fiber has finished.
  void give_back(const boost::context::stack_context& stack) noexcept { free_.push_back(stack); }

 private:
  std::vector<boost::context::stack_context> free_;  // never more than one block's worth
};

/// Boost.Context StackAllocator over a StackPool (Boost calls deallocate when a fiber ends).
struct PooledStack {
  StackPool* pool;
  boost::context::stack_context allocate() { return pool->take(); }
  void deallocate(boost::context::stack_context& stack) noexcept { pool->give_back(stack); }
};

// ---------------------------------------------------------------------------------------------

enum class ThreadState { runnable, at_barrier, at_warp_op, exited, failed };

enum class WarpOp { shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all, syncwarp };

/// Ensures: the CUDA name of the intrinsic.
inline const char* name_of(WarpOp op) {
  switch (op) {
    case WarpOp::shfl_idx:
      return "__shfl_sync";
    case WarpOp::shfl_up:
      return "__shfl_up_sync";
    case WarpOp::shfl_down:
      return "__shfl_down_sync";
    case WarpOp::shfl_xor:
      return "__shfl_xor_sync";
    case WarpOp::ballot:
      return "__ballot_sync";
    case WarpOp::any:
      return "__any_sync";
    case WarpOp::all:
      return "__all_sync";
    case WarpOp::syncwarp:
      break;
  }
  return "__syncwarp";
}

inline bool is_shuffle(WarpOp op) {
  return op == WarpOp::shfl_idx || op == WarpOp::shfl_up || op == WarpOp::shfl_down ||
         op == WarpOp::shfl_xor;
}

/// One lane's call of a warp collective; `result` is filled in when the collective completes.
struct WarpCall {
  WarpOp op = WarpOp::syncwarp;
  unsigned mask = 0;
  int width = static_cast<int>(warp_lanes);
  int value_bytes = 0;
  std::uint64_t value = 0;  // the bits of a shuffled value, or a vote's predicate (0 or 1)
  int operand = 0;          // a shuffle's source lane, delta or lane mask
  std::uint64_t result = 0;
};

/// Ensures: true when lanes calling `a` and `b` take part in one collective: same intrinsic,
/// mask, width and value size (PTX requires the same qualifiers and membermask).
inline bool same_collective(const WarpCall& a, const WarpCall& b) {
  return a.op == b.op && a.mask == b.mask && a.width == b.width && a.value_bytes == b.value_bytes;
}

/// Ensures: a description such as "__shfl_down_sync(mask 0xffffffff, width 16)".
inline std::string describe(const WarpCall& call) {
  std::string text = std::string(name_of(call.op)) + "(mask " + hex_mask(call.mask);
  if (is_shuffle(call.op) && call.width != static_cast<int>(warp_lanes)) {
    text += ", width " + std::to_string(call.width);
  }
  return text + ")";
}

/// One CUDA thread of the running block.
struct Thread {
  boost::context::fiber fiber;      // resumes the thread; empty while it runs and once it ended
  boost::context::fiber scheduler;  // resumes the scheduler; valid while the thread runs
  uint3 index{};
  unsigned linear = 0;  // x + y * blockDim.x + z * blockDim.x * blockDim.y; lane = linear % 32
  ThreadState state = ThreadState::exited;
  CallSite site;  // where it waits (barrier or warp collective)
  WarpCall warp;
  std::exception_ptr error;
  StackBounds stack;
  StackBounds scheduler_stack;
  void* asan_fake_stack = nullptr;
};

/// Unwinds a suspended fiber when its block is abandoned; not a std::exception, so that no
/// handler for those catches it.
struct Abort {};

/// What a launch runs, as the macro NORMLAB_CUDA_LAUNCH describes it.
struct LaunchInfo {
  const char* kernel_name;
  CallSite site;
  const void* kernel;
  dim3 grid;
  dim3 block;
  std::size_t dynamic_shared_bytes;
};

/// A type-erased call of the kernel with the launch's arguments; one call per CUDA thread.
struct KernelBody {
  void (*call)(const void* context);
  const void* context;
};

/// The scheduler and the state of the running launch (see the top of this file).
class Runtime {
 public:
  /// Ensures: the process-wide runtime. It is never destroyed, so fibers and their stacks stay
  /// valid during static destruction (as the sanitizers need).
  static Runtime& instance() {
    static Runtime* const runtime = new Runtime();
    return *runtime;
  }

  /// Runs `body` once per thread of every block of `info.grid`, in the current schedule, and
  /// returns when all blocks have finished. Throws Error (naming the kernel, the launch site and,
  /// where it applies, the block, thread and source line) for an invalid launch configuration,
  /// a launch from inside a kernel, a stuck block, or an exception thrown by a thread.
  void launch(const LaunchInfo& info, KernelBody body) {
    if (info_ != nullptr) {
      throw Error(launch_context(info) + ": launched from inside kernel '" + info_->kernel_name +
                  "'; the emulator runs one launch at a time (no dynamic parallelism)");
    }
    check_launch_configuration(info);
    if (launch_log_ != nullptr) launch_log_->push_back(info.kernel_name);
    const Schedule schedule = current_schedule();
    std::mt19937_64 random(schedule.seed);
    std::unique_ptr<unsigned char[]> dynamic_shared(new unsigned char[info.dynamic_shared_bytes]);

    struct EndLaunch {
      Runtime& runtime;
      ~EndLaunch() {
        runtime.info_ = nullptr;
        runtime.dynamic_shared_ = nullptr;
      }
    } end_launch{*this};
    info_ = &info;
    body_ = body;
    schedule_ = schedule;
    dynamic_shared_ = dynamic_shared.get();
    grid_dim = info.grid;
    block_dim = info.block;

    const std::uint64_t blocks =
        std::uint64_t{info.grid.x} * std::uint64_t{info.grid.y} * std::uint64_t{info.grid.z};
    std::vector<std::uint64_t> block_order;
    arrange(block_order, blocks, random);
    for (const std::uint64_t b : block_order) {
      block_index = uint3{static_cast<unsigned>(b % info.grid.x),
                          static_cast<unsigned>(b / info.grid.x % info.grid.y),
                          static_cast<unsigned>(b / info.grid.x / info.grid.y)};
      run_block(random);
    }
  }

  /// The calling thread waits at the block barrier `site`. Requires: called from a kernel.
  void syncthreads(CallSite site) {
    Thread& thread = current_thread("__syncthreads", site);
    thread.site = site;
    thread.state = ThreadState::at_barrier;
    suspend(thread);
  }

  /// The calling lane enters the warp collective `call` at `site` and waits until it completes.
  /// Ensures: the lane's result. Throws Error if the lane is not in its own mask or a shuffle
  /// width is not a power of two in [1, 32]. Requires: called from a kernel.
  std::uint64_t warp_collective(const WarpCall& call, CallSite site) {
    Thread& thread = current_thread(name_of(call.op), site);
    const unsigned lane = thread.linear % warp_lanes;
    if ((call.mask >> lane & 1u) == 0) {
      throw Error(std::string(name_of(call.op)) + " at " + to_string(site) + ": the calling lane " +
                  std::to_string(lane) + " is not in its mask " + hex_mask(call.mask) +
                  " (PTX: undefined behaviour)");
    }
    if (is_shuffle(call.op) && (call.width < 1 || call.width > static_cast<int>(warp_lanes) ||
                                (call.width & (call.width - 1)) != 0)) {
      throw Error(std::string(name_of(call.op)) + " at " + to_string(site) + ": width " +
                  std::to_string(call.width) + " is not a power of two in [1, 32]");
    }
    thread.warp = call;
    thread.site = site;
    thread.state = ThreadState::at_warp_op;
    suspend(thread);
    return thread.warp.result;
  }

  /// Ensures: the running launch's dynamic shared memory (poisoned with 0xFF at block start).
  /// Requires: called from a kernel.
  unsigned char* dynamic_shared(CallSite site) {
    current_thread("dynamic shared memory", site);
    return dynamic_shared_;
  }

  /// Ensures: launches of `kernel` may ask for up to `bytes` of dynamic shared memory.
  /// Requires: bytes <= max_dynamic_shared_opt_in (the caller checks).
  void set_dynamic_shared_limit(const void* kernel, std::size_t bytes) {
    dynamic_shared_limits_[kernel] = bytes;
  }

  /// Ensures: the name of every kernel launched from now on (as written in its launch) is
  /// appended to *log, until set_launch_log(nullptr). Use ScopedLaunchLog.
  void set_launch_log(std::vector<std::string>* log) { launch_log_ = log; }

 private:
  std::vector<std::string>* launch_log_ = nullptr;
  Runtime() : threads_(max_threads_per_block) {}

  static std::string launch_context(const LaunchInfo& info) {
    return "normlab cuda_emu: kernel '" + std::string(info.kernel_name) + "' launched at " +
           to_string(info.site);
  }

  std::string block_context() const {
    return launch_context(*info_) + ", block " + to_string_3d(block_index);
  }

  std::string thread_name(const Thread& thread) const {
    return "thread " + to_string_3d(thread.index) + " (warp " +
           std::to_string(thread.linear / warp_lanes) + " lane " +
           std::to_string(thread.linear % warp_lanes) + ")";
  }

  void check_launch_configuration(const LaunchInfo& info) const {
    const std::string context = launch_context(info) + " with grid " + to_string_3d(info.grid) +
                                " and block " + to_string_3d(info.block) + ": ";
    const unsigned grid[3] = {info.grid.x, info.grid.y, info.grid.z};
    const unsigned block[3] = {info.block.x, info.block.y, info.block.z};
    for (int d = 0; d < 3; ++d) {
      if (grid[d] == 0 || block[d] == 0) {
        throw Error(context + "zero-sized launch (CUDA fails it with an invalid configuration)");
      }
      if (block[d] > max_block_dim[d]) {
        throw Error(context + "block dimension " + "xyz"[d] + " = " + std::to_string(block[d]) +
                    " exceeds the limit " + std::to_string(max_block_dim[d]));
      }
      if (grid[d] > max_grid_dim[d]) {
        throw Error(context + "grid dimension " + "xyz"[d] + " = " + std::to_string(grid[d]) +
                    " exceeds the limit " + std::to_string(max_grid_dim[d]));
      }
    }
    const std::uint64_t threads =
        std::uint64_t{info.block.x} * std::uint64_t{info.block.y} * std::uint64_t{info.block.z};
    if (threads > max_threads_per_block) {
      throw Error(context + "a block of " + std::to_string(threads) +
                  " threads exceeds the limit of " + std::to_string(max_threads_per_block));
    }
    const auto opt_in = dynamic_shared_limits_.find(info.kernel);
    const std::size_t limit =
        opt_in == dynamic_shared_limits_.end() ? default_dynamic_shared_limit : opt_in->second;
    if (info.dynamic_shared_bytes > limit) {
      throw Error(context + std::to_string(info.dynamic_shared_bytes) +
                  " bytes of dynamic shared memory exceed the kernel's limit of " +
                  std::to_string(limit) +
                  "; above 48 KiB, opt in first with cudaFuncSetAttribute(kernel, "
                  "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes)");
    }
  }

  /// Ensures: `order` holds 0 .. count-1 in the schedule's order.
  template <typename Index>
  void arrange(std::vector<Index>& order, Index count, std::mt19937_64& random) const {
    order.resize(count);
    std::iota(order.begin(), order.end(), Index{0});
    if (schedule_.order == Schedule::Order::reverse) std::reverse(order.begin(), order.end());
    if (schedule_.order == Schedule::Order::random)
      std::shuffle(order.begin(), order.end(), random);
  }

  static void poison_shared_memory(unsigned char* dynamic_shared, std::size_t dynamic_bytes) {
    if (__start_normlab_emu_shared != nullptr) {
      std::memset(__start_normlab_emu_shared, shared_poison,
                  static_cast<std::size_t>(__stop_normlab_emu_shared - __start_normlab_emu_shared));
    }
    std::memset(dynamic_shared, shared_poison, dynamic_bytes);
  }

  void run_block(std::mt19937_64& random) {
    const unsigned count = block_dim.x * block_dim.y * block_dim.z;
    poison_shared_memory(dynamic_shared_, info_->dynamic_shared_bytes);
    for (unsigned i = 0; i < count; ++i) start_thread(threads_[i], i);
    arrange(thread_order_, count, random);
    for (;;) {
      for (const unsigned i : thread_order_) {
        Thread& thread = threads_[i];
        if (thread.state != ThreadState::runnable) continue;
        resume(thread);
        if (thread.state == ThreadState::failed) abandon_block(count, failure_message(thread));
      }
      if (std::all_of(threads_.begin(), threads_.begin() + count,
                      [](const Thread& t) { return t.state == ThreadState::exited; })) {
        return;
      }
      if (!release_waiting_threads(count)) abandon_block(count, describe_stall(count));
      if (schedule_.order == Schedule::Order::random) {
        std::shuffle(thread_order_.begin(), thread_order_.end(), random);
      }
    }
  }

  void start_thread(Thread& thread, unsigned linear) {
    thread.linear = linear;
    thread.index = uint3{linear % block_dim.x, linear / block_dim.x % block_dim.y,
                         linear / block_dim.x / block_dim.y};
    thread.state = ThreadState::runnable;
    thread.error = nullptr;
    const boost::context::stack_context stack = stacks_.take();
    thread.stack = {static_cast<char*>(stack.sp) - stack.size, stack.size};
    thread.fiber = boost::context::fiber(
        std::allocator_arg, boost::context::preallocated(stack.sp, stack.size, stack),
        PooledStack{&stacks_}, [this, &thread](boost::context::fiber&& scheduler) {
          return thread_main(thread, std::move(scheduler));
        });
  }

  // Runs on the thread's fiber: the kernel, then back to the scheduler for good.
  boost::context::fiber thread_main(Thread& thread, boost::context::fiber&& scheduler) {
    asan_finish_switch(nullptr, &thread.scheduler_stack);
    thread.scheduler = std::move(scheduler);
    try {
      if (!aborting_) body_.call(body_.context);
    } catch (const Abort&) {
    } catch (...) {
      thread.error = std::current_exception();
    }
    thread.state = thread.error ? ThreadState::failed : ThreadState::exited;
    asan_start_switch(nullptr, thread.scheduler_stack);
    return std::move(thread.scheduler);
  }

  // Scheduler side: runs `thread` until it waits or ends.
  void resume(Thread& thread) {
    current_ = &thread;
    thread_index = thread.index;
    void* fake_stack = nullptr;
    asan_start_switch(&fake_stack, thread.stack);
    thread.fiber = std::move(thread.fiber).resume();
    asan_finish_switch(fake_stack, nullptr);
    current_ = nullptr;
  }

  // Thread side: back to the scheduler until released (or unwound if the block is abandoned).
  void suspend(Thread& thread) {
    asan_start_switch(&thread.asan_fake_stack, thread.scheduler_stack);
    thread.scheduler = std::move(thread.scheduler).resume();
    asan_finish_switch(thread.asan_fake_stack, &thread.scheduler_stack);
    if (aborting_) throw Abort{};
  }

  Thread& current_thread(const char* what, CallSite site) {
    if (current_ == nullptr) {
      throw Error("normlab cuda_emu: " + std::string(what) + " at " + to_string(site) +
                  " used outside a kernel launched with NORMLAB_CUDA_LAUNCH");
    }
    return *current_;
  }

  std::string failure_message(const Thread& thread) const {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(thread.error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    return block_context() + ", " + thread_name(thread) + ": " + what;
  }

  // Unwinds every suspended fiber of the block (their stacks go back to the pool) and throws.
  [[noreturn]] void abandon_block(unsigned count, const std::string& message) {
    aborting_ = true;
    for (unsigned i = 0; i < count; ++i) {
      if (threads_[i].fiber) resume(threads_[i]);
    }
    aborting_ = false;
    throw Error(message);
  }

  // Ensures: true if some waiting threads were released (barrier or warp collectives).
  bool release_waiting_threads(unsigned count) {
    bool released = release_barrier(count);
    for (unsigned first = 0; first < count; first += warp_lanes) {
      released |= release_warp(first, std::min(count, first + warp_lanes));
    }
    return released;
  }

  bool release_barrier(unsigned count) {
    const CallSite site = threads_[0].site;
    for (unsigned i = 0; i < count; ++i) {
      if (threads_[i].state != ThreadState::at_barrier || threads_[i].site != site) return false;
    }
    for (unsigned i = 0; i < count; ++i) threads_[i].state = ThreadState::runnable;
    return true;
  }

  // Ensures: the lanes of the warp starting at thread `first` that exist, are named in `mask`
  // and have not exited (PTX: exited threads do not take part in a collective).
  unsigned participants(unsigned first, unsigned end, unsigned mask) const {
    unsigned lanes = 0;
    for (unsigned lane = 0; lane < end - first; ++lane) {
      if ((mask >> lane & 1u) != 0 && threads_[first + lane].state != ThreadState::exited) {
        lanes |= 1u << lane;
      }
    }
    return lanes;
  }

  bool release_warp(unsigned first, unsigned end) {
    bool released = false;
    for (unsigned lane = 0; lane < end - first; ++lane) {
      const Thread& caller = threads_[first + lane];
      if (caller.state != ThreadState::at_warp_op) continue;
      const unsigned group = participants(first, end, caller.warp.mask);
      bool complete = true;
      for (unsigned other = 0; other < warp_lanes; ++other) {
        if ((group >> other & 1u) == 0) continue;
        const Thread& t = threads_[first + other];
        complete =
            complete && t.state == ThreadState::at_warp_op && same_collective(t.warp, caller.warp);
      }
      if (!complete) continue;
      complete_collective(first, group);
      released = true;
    }
    return released;
  }

  // Ensures: every lane of `group` holds its result and is runnable.
  void complete_collective(unsigned first, unsigned group) {
    std::uint64_t votes = 0;
    for (unsigned lane = 0; lane < warp_lanes; ++lane) {
      if ((group >> lane & 1u) != 0 && threads_[first + lane].warp.value != 0) {
        votes |= std::uint64_t{1} << lane;
      }
    }
    for (unsigned lane = 0; lane < warp_lanes; ++lane) {
      if ((group >> lane & 1u) == 0) continue;
      WarpCall& call = threads_[first + lane].warp;
      switch (call.op) {
        case WarpOp::ballot:
          call.result = votes;
          break;
        case WarpOp::any:
          call.result = votes != 0;
          break;
        case WarpOp::all:
          call.result = votes == group;
          break;
        case WarpOp::syncwarp:
          call.result = 0;
          break;
        default:
          call.result = shuffle_result(first, group, lane, call);
      }
      threads_[first + lane].state = ThreadState::runnable;
    }
  }

  // PTX shfl.sync: lanes form segments of `width`; a source outside the segment (above it for
  // down/xor/idx, below it for up) yields the lane's own value; a source lane that does not
  // take part (not in the mask, exited, or beyond the block) yields an undefined value, which
  // the emulator makes all ones (a NaN for floating point) so that a result built on it shows.
  std::uint64_t shuffle_result(unsigned first, unsigned group, unsigned lane,
                               const WarpCall& call) const {
    const int l = static_cast<int>(lane);
    const int segment_first = l & ~(call.width - 1);
    const int segment_last = segment_first + call.width - 1;
    int source = l;
    switch (call.op) {
      case WarpOp::shfl_idx:
        source = segment_first + (call.operand & (call.width - 1));
        break;
      case WarpOp::shfl_up:
        source = l - call.operand >= segment_first ? l - call.operand : l;
        break;
      case WarpOp::shfl_down:
        source = l + call.operand <= segment_last ? l + call.operand : l;
        break;
      default:  // shfl_xor
        source = (l ^ call.operand) <= segment_last ? (l ^ call.operand) : l;
    }
    if ((group >> source & 1u) == 0) {
      return call.value_bytes == 8 ? ~std::uint64_t{0} : std::uint64_t{0xFFFFFFFFu};
    }
    return threads_[first + static_cast<unsigned>(source)].warp.value;
  }

  template <typename Predicate>
  const Thread* find_thread(unsigned count, Predicate predicate) const {
    const auto end = threads_.begin() + count;
    const auto found = std::find_if(threads_.begin(), end, predicate);
    return found == end ? nullptr : &*found;
  }

  // Requires: no thread can run and nothing can be released. Ensures: why, for the error.
  std::string describe_stall(unsigned count) const {
    const std::string context = block_context() + ": ";
    if (const Thread* waiting = find_thread(
            count, [](const Thread& t) { return t.state == ThreadState::at_barrier; })) {
      const std::string where =
          thread_name(*waiting) + " waits at __syncthreads() at " + to_string(waiting->site);
      if (const Thread* gone =
              find_thread(count, [](const Thread& t) { return t.state == ThreadState::exited; })) {
        return context + "divergent __syncthreads(): " + where + ", but " + thread_name(*gone) +
               " has already exited; every thread of the block must reach each __syncthreads()";
      }
      if (const Thread* other = find_thread(count, [waiting](const Thread& t) {
            return t.state == ThreadState::at_barrier && t.site != waiting->site;
          })) {
        return context + "divergent __syncthreads(): " + where + ", but " + thread_name(*other) +
               " waits at the one at " + to_string(other->site) +
               "; all threads of the block must reach the same __syncthreads()";
      }
    }
    for (unsigned i = 0; i < count; ++i) {
      const Thread& caller = threads_[i];
      if (caller.state != ThreadState::at_warp_op) continue;
      const unsigned first = i - i % warp_lanes;
      const unsigned group =
          participants(first, std::min(count, first + warp_lanes), caller.warp.mask);
      for (unsigned lane = 0; lane < warp_lanes; ++lane) {
        if ((group >> lane & 1u) == 0) continue;
        const Thread& other = threads_[first + lane];
        const std::string where = thread_name(caller) + " waits at " + describe(caller.warp) +
                                  " at " + to_string(caller.site) + " for " + thread_name(other) +
                                  ", named in its mask, which waits at ";
        if (other.state == ThreadState::at_warp_op && !same_collective(other.warp, caller.warp)) {
          return context + "mismatched warp collectives: " + where + describe(other.warp) + " at " +
                 to_string(other.site) +
                 "; the lanes named in a mask must all call the same collective with that mask";
        }
        if (other.state == ThreadState::at_barrier) {
          return context + "deadlock: " + where + "__syncthreads() at " + to_string(other.site);
        }
      }
    }
    return context + "deadlock: no thread of the block can make progress";
  }

  std::vector<Thread> threads_;  // max_threads_per_block, never reallocated (fibers point in)
  std::vector<unsigned> thread_order_;
  StackPool stacks_;
  std::unordered_map<const void*, std::size_t> dynamic_shared_limits_;
  const LaunchInfo* info_ = nullptr;  // the running launch, or null
  KernelBody body_{};
  Schedule schedule_{};
  unsigned char* dynamic_shared_ = nullptr;
  Thread* current_ = nullptr;  // the thread whose fiber runs, or null on the scheduler
  bool aborting_ = false;
};

}  // namespace normlab::cuda_emu::detail
