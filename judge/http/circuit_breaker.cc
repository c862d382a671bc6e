// circuit_breaker.cc: the closed / open / half-open state machine.
#include "judge/http/circuit_breaker.h"

namespace rlj {

CircuitBreaker::CircuitBreaker(int failure_threshold, std::chrono::nanoseconds cooldown)
    : threshold_(failure_threshold), cooldown_(cooldown) {}

bool CircuitBreaker::Allow(Time now) {
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (now < open_until_) return false;
      state_ = State::kHalfOpen;
      probe_in_flight_ = true;
      return true;
    case State::kHalfOpen:
      if (probe_in_flight_) return false;
      probe_in_flight_ = true;
      return true;
  }
  return true;
}

void CircuitBreaker::OnSuccess() {
  state_ = State::kClosed;
  consecutive_failures_ = 0;
  probe_in_flight_ = false;
}

void CircuitBreaker::OnFailure(Time now) {
  if (threshold_ <= 0) return;
  if (state_ == State::kHalfOpen) {
    Open(now);
    return;
  }
  if (state_ == State::kOpen) return;  // a request sent before it opened
  if (++consecutive_failures_ >= threshold_) Open(now);
}

void CircuitBreaker::Open(Time now) {
  state_ = State::kOpen;
  open_until_ = now + cooldown_;
  probe_in_flight_ = false;
  consecutive_failures_ = 0;
  ++times_opened_;
}

CircuitBreaker::State CircuitBreaker::state(Time now) const {
  if (state_ == State::kOpen && now >= open_until_) return State::kHalfOpen;
  return state_;
}

std::string CircuitBreaker::StateName(State state) {
  switch (state) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

}  // namespace rlj
