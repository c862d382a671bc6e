// shutdown.h: process-wide graceful stop on SIGINT/SIGTERM. Call InstallShutdownHandler() first thing in
// a subcommand (before any thread starts) so the signals are taken by one waiting thread, not a random one.
#pragma once

#include <chrono>

namespace rlj {

void InstallShutdownHandler();

// Requests a stop from inside the process (as a signal would).
void RequestShutdown();

bool ShutdownRequested();

// Blocks until a stop is requested or `timeout` passes; returns ShutdownRequested().
bool WaitForShutdown(std::chrono::milliseconds timeout);

// Blocks until a stop is requested.
void WaitForShutdown();

// The signal that asked for the stop (0 when it came from RequestShutdown).
int ShutdownSignal();

}  // namespace rlj
