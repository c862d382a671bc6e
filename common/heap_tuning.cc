// heap_tuning.cc: glibc mallopt settings that keep multi-MiB transfer buffers in the reused heap.
#include "common/heap_tuning.h"

#include <cstdlib>  // defines __GLIBC__ (through <features.h>) on glibc; tested below

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rlj {

void KeepLargeBuffersInTheHeap() {
#if defined(__GLIBC__)
  ::mallopt(M_MMAP_THRESHOLD, 64 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
  ::mallopt(M_TOP_PAD, 64 << 20);
#endif
}

void KeepFreedMemoryInTheHeap() {
#if defined(__GLIBC__)
  ::mallopt(M_MMAP_THRESHOLD, 256 << 20);
  ::mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

void UseOneMallocArena() {
#if defined(__GLIBC__)
  ::mallopt(M_ARENA_MAX, 1);
#endif
}

}  // namespace rlj
