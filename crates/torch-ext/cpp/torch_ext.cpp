// What tch does not expose, as a C API for ../src/lib.rs.
//
// - CPU autocast: the same switch as Python's `torch.autocast("cpu", dtype=torch.bfloat16)`
//   (a thread-local dispatch key; matmuls run in bf16, weights stay f32, casts are cached
//   for the region and dropped when it ends).
// - c10d: a Gloo process group over a TCPStore rendezvous, with all-reduce (sum) and broadcast
//   of one tensor at a time, as torch.distributed does for DDP's flat buckets.
//
// Every function catches C++ exceptions and returns their message (malloc'd, freed by
// seqkd_ext_free_string) instead of unwinding into Rust.

#include <ATen/autocast_mode.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace {

// libtorch's errors without their C++ stack trace (the caller adds what it was doing).
char* message(const std::exception& e) {
  if (auto c10 = dynamic_cast<const c10::Error*>(&e)) {
    return strdup(c10->what_without_backtrace());
  }
  return strdup(e.what());
}

char* message(const char* text) {
  return strdup(text);
}

struct Group {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

} // namespace

extern "C" {

void seqkd_ext_free_string(char* s) {
  free(s);
}

// Enters a CPU autocast region to bf16 (kind 0) or f16 (kind 1).
char* seqkd_ext_autocast_enter(int kind) {
  try {
    at::autocast::set_autocast_dtype(at::kCPU, kind == 1 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(at::kCPU, true);
    at::autocast::increment_nesting();
    return nullptr;
  } catch (const std::exception& e) {
    return message(e);
  } catch (...) {
    return message("unknown C++ exception");
  }
}

// Leaves the region; the outermost exit drops the cached bf16 copies of the weights.
char* seqkd_ext_autocast_exit() {
  try {
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
      at::autocast::set_autocast_enabled(at::kCPU, false);
    }
    return nullptr;
  } catch (const std::exception& e) {
    return message(e);
  } catch (...) {
    return message("unknown C++ exception");
  }
}

int seqkd_ext_autocast_enabled() {
  return at::autocast::is_autocast_enabled(at::kCPU) ? 1 : 0;
}

// A Gloo group of `world` processes meeting at host:port (rank 0 serves the store).
char* seqkd_ext_group_new(
    const char* host,
    int port,
    int rank,
    int world,
    long timeout_ms,
    void** out) {
  try {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(port);
    so.isServer = rank == 0;
    so.numWorkers = world;
    so.waitWorkers = true;
    so.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // The interface this process's Gloo binds (as torch.distributed chooses it): the one named by
    // GLOO_SOCKET_IFNAME; loopback when the group meets on loopback (one machine); otherwise
    // the address this machine's hostname resolves to.
    const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
    std::string h(host);
    if (ifname != nullptr && *ifname != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (h == "localhost" || h.rfind("127.", 0) == 0) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(h));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 1;
    auto group = new Group{c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options)};
    *out = group;
    return nullptr;
  } catch (const std::exception& e) {
    return message(e);
  } catch (...) {
    return message("unknown C++ exception");
  }
}

void seqkd_ext_group_free(void* group) {
  delete static_cast<Group*>(group);
}

// Sums `tensor` (contiguous, CPU) over the group, in place.
char* seqkd_ext_all_reduce_sum(void* group, at::Tensor* tensor) {
  try {
    if (!tensor->is_contiguous()) return message("all_reduce needs a contiguous tensor");
    std::vector<at::Tensor> ts{*tensor};
    static_cast<Group*>(group)->pg->allreduce(ts)->wait();
    return nullptr;
  } catch (const std::exception& e) {
    return message(e);
  } catch (...) {
    return message("unknown C++ exception");
  }
}

// Overwrites `tensor` with rank `root`'s, in place.
char* seqkd_ext_broadcast(void* group, at::Tensor* tensor, int root) {
  try {
    if (!tensor->is_contiguous()) return message("broadcast needs a contiguous tensor");
    std::vector<at::Tensor> ts{*tensor};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    static_cast<Group*>(group)->pg->broadcast(ts, opts)->wait();
    return nullptr;
  } catch (const std::exception& e) {
    return message(e);
  } catch (...) {
    return message("unknown C++ exception");
  }
}

} // extern "C"
