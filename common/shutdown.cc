// shutdown.cc: SIGINT/SIGTERM are blocked in every thread and taken by one sigwait thread.
#include "common/shutdown.h"

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace rlj {
namespace {

std::mutex mu;
std::condition_variable cv;
bool requested = false;
std::atomic<int> stop_signal{0};

void Notify(int signal) {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (requested) return;
    requested = true;
  }
  stop_signal = signal;
  cv.notify_all();
}

}  // namespace

void InstallShutdownHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every thread created after this
    signal(SIGPIPE, SIG_IGN);                   // a vanished peer is an error code, not a crash
    std::thread([set] {
      while (true) {
        int signal = 0;
        if (sigwait(&set, &signal) == 0) Notify(signal);
      }
    }).detach();
  });
}

void RequestShutdown() { Notify(0); }

bool ShutdownRequested() {
  std::lock_guard<std::mutex> lock(mu);
  return requested;
}

bool WaitForShutdown(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait_for(lock, timeout, [] { return requested; });
  return requested;
}

void WaitForShutdown() {
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [] { return requested; });
}

int ShutdownSignal() { return stop_signal.load(); }

}  // namespace rlj
