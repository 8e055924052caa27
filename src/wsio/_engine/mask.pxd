# C declarations for mask.py when Cython compiles it (the augmenting .pxd).
#
# Everything declared or cimported here is in mask.py's scope when it is compiled;
# mask.py also names them in one `from cython.cimports.wsio._engine.mask import ...`
# (inside `if cython.compiled:`) so that ruff and mypy see where they come from.

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memcpy, memmove

# C types under names mask.py can import (Py_buffer is a Cython builtin with no module).
ctypedef Py_buffer buffer_t
ctypedef Py_buffer *buffer_ptr
ctypedef unsigned char *uchar_ptr
ctypedef unsigned char key_t[4]

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    /* With gcc or clang on x86-64 glibc the loop below is compiled twice, for AVX2 and for
       the baseline (SSE2), and the loader picks one by CPU (an ifunc). AVX2 is where the
       XOR overtakes memcpy; AVX-512 measured no faster, and a wider clone would only
       add code. Elsewhere (other CPUs, musl, macOS, MSVC) it is compiled once. */
    #if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
    #  if __has_attribute(target_clones)
    #    define WSIO_MASK_CLONES __attribute__((target_clones("avx2", "default")))
    #  endif
    #endif
    #ifndef WSIO_MASK_CLONES
    #  define WSIO_MASK_CLONES
    #endif
    /* Every module that cimports this file gets the function; one that never calls it
       (it only needs a type from here) must not warn about it. Not `inline`: a function
       with target_clones is an ifunc, which gcc does not inline. */
    #if defined(__GNUC__) || defined(__clang__)
    #  define WSIO_MASK_UNUSED_OK __attribute__((unused))
    #else
    #  define WSIO_MASK_UNUSED_OK
    #endif

    /* Runs this long or longer first go up to a 32-byte boundary of dst (see below). */
    #define WSIO_MASK_ALIGN_FROM 4096

    /* dst[i] = src[i] ^ mask[(offset + i) % 4] for 0 <= i < n. dst may be src (in place)
       but must not otherwise overlap it. The main loop works on 64-bit words, loaded and
       stored with memcpy (no alignment or aliasing assumptions), which the compiler turns
       into vector code. Keys are built byte by byte, so the CPU's byte order is moot. */
    WSIO_MASK_CLONES WSIO_MASK_UNUSED_OK
    static void wsio_mask_xor(unsigned char *dst, const unsigned char *src, Py_ssize_t n,
                              const unsigned char *mask, Py_ssize_t offset)
    {
        unsigned char key[8];  /* key[b]: the mask byte for dst[b], dst[b + 4], ... */
        uint64_t key64, word;
        size_t lead, words, k;
        int j;
        for (j = 0; j < 8; j++)
            key[j] = mask[((offset & 3) + j) & 3];
        memcpy(&key64, key, 8);
        if (n >= WSIO_MASK_ALIGN_FROM) {
            /* Vector stores that straddle a cache line cost up to half the throughput
               (measured 60-75 against 105 GB/s at 64 KiB on AVX2), so long runs first
               reach dst's next 32-byte boundary: single bytes to a multiple of 8, then
               whole words. Short runs skip this; it would cost more than it saves. */
            lead = (size_t)(0 - (uintptr_t)dst) & 7;
            for (k = 0; k < lead; k++)
                dst[k] = src[k] ^ key[k];
            dst += lead;
            src += lead;
            n -= (Py_ssize_t)lead;
            for (j = 0; j < 8; j++)
                key[j] = mask[((offset & 3) + (int)lead + j) & 3];
            memcpy(&key64, key, 8);
            lead = ((size_t)(0 - (uintptr_t)dst) & 31) / 8;
            for (k = 0; k < lead; k++) {
                memcpy(&word, src + 8 * k, 8);
                word ^= key64;
                memcpy(dst + 8 * k, &word, 8);
            }
            dst += 8 * lead;
            src += 8 * lead;
            n -= (Py_ssize_t)(8 * lead);
        }
        /* A plain counted loop (no running start index) is what gcc's vectoriser takes.
           Unrolled, so that each turn moves 128 bytes: a one-vector loop ran at half speed
           or full speed depending on where the linker happened to put it (a 64-byte
           fetch boundary inside the loop). */
        words = (size_t)n / 8;
    #if defined(__clang__)
        #pragma unroll 4
    #elif defined(__GNUC__)
        #pragma GCC unroll 4
    #endif
        for (k = 0; k < words; k++) {
            memcpy(&word, src + 8 * k, 8);
            word ^= key64;
            memcpy(dst + 8 * k, &word, 8);
        }
        for (k = words * 8; k < (size_t)n; k++)
            dst[k] = src[k] ^ key[k & 7];
    }
    """
    void wsio_mask_xor(unsigned char *dst, const unsigned char *src, Py_ssize_t n,
                       const unsigned char *mask, Py_ssize_t offset) nogil

cdef extern from *:
    """
    /* The masking-key pool's bytes (see mask.py). Only mask.py's take_mask calls this, so
       the one pool lives in the mask module; in a module that merely cimports this file
       the unused inline function and its array are compiled away. */
    static inline unsigned char *wsio_mask_pool(void)
    {
        static unsigned char pool[4096];
        return pool;
    }
    """
    unsigned char *wsio_mask_pool() noexcept nogil


# Compiled-only helpers (plain functions in mask.py; pure Python never calls them).
# take_mask: the next 4-byte masking key into out (RFC 6455 §5.3; see mask.py).
cdef int take_mask(uchar_ptr out) except -1
cdef int _read_mask(object mask, uchar_ptr out) except -1
cdef int _get_writable(object buf, buffer_ptr view) except -1
