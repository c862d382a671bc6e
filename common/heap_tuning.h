// heap_tuning.h: glibc malloc settings for processes that move large buffers (weight publishing/fetching):
// multi-MiB chunk buffers come from the reused heap instead of fresh mmap'ed pages, whose page faults and
// munmap calls otherwise dominate a weight transfer. The learner, the actors and `rlj bench sync` call it at
// start-up.
#pragma once

namespace rlj {

// Raises glibc's mmap threshold (64 MiB) and trim threshold (1 GiB) for this process; a no-op elsewhere.
// Call once at process start, before threads are started.
// Not covered here: glibc unmaps a free per-thread arena heap (64 MiB) whatever the trim threshold, so
// buffers allocated on gRPC and fetcher threads still arrive as fresh pages. One malloc arena fixes that; it
// must be set before the first thread exists, so tools/main.cc sets it (mallopt(M_ARENA_MAX, 1)) first thing
// for `rlj learner`, `rlj actor` and `rlj bench sync` (measured: ~4x the sync throughput).
void KeepLargeBuffersInTheHeap();

}  // namespace rlj
