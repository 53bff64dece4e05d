// How a long engine call (load, prefill, decode) reports progress and learns it should stop.
#pragma once

#include <functional>
#include <stdexcept>

namespace al {

// Thrown inside a job when its cancel token is set; the addon turns it into the
// JS error { message: "cancelled", code: "CANCELLED" }.
struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

struct JobHooks {
  std::function<void(double done, double total)> progress;  // may be empty
  std::function<bool()> should_stop;                          // may be empty

  void report(double done, double total) const {
    if (progress) progress(done, total);
  }
  void check_stop() const {
    if (should_stop && should_stop()) throw Cancelled();
  }
};

}  // namespace al
