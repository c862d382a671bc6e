// heap_tuning.h: glibc malloc settings for processes that move large buffers (weight publishing/fetching):
// multi-MiB chunk buffers come from the reused heap instead of fresh mmap'ed pages, whose page faults and
// munmap calls otherwise dominate a weight transfer (measured 4x in `rlj bench sync`).
#pragma once

namespace rlj {

// Raises glibc's mmap threshold (64 MiB) and trim threshold (1 GiB) for this process; a no-op elsewhere.
// Call once at process start, before threads are started.
void KeepLargeBuffersInTheHeap();

}  // namespace rlj
