# C declarations for utf8.py when Cython compiles it (the augmenting .pxd).
#
# Everything declared or cimported here is in utf8.py's scope when it is compiled;
# utf8.py also names them in one `from cython.cimports.wsio._engine.utf8 import ...`
# (inside `if cython.compiled:`) so that ruff and mypy see where they come from.

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.string cimport memcpy

# C types under names utf8.py can import (Py_buffer is a Cython builtin with no module).
ctypedef Py_buffer buffer_t
ctypedef const unsigned char *cbytes_ptr
ctypedef uint64_t word_t
ctypedef Py_ssize_t *ssize_ptr


cdef extern from *:
    """
    /* The vector check of long stretches: the "lookup" algorithm of J. Keiser and
       D. Lemire, "Validating UTF-8 In Less Than One Instruction Per Byte" (2021).
       Three 16-entry tables, indexed by the high and low nibble of the previous byte
       and the high nibble of this one, flag every bad pair of adjacent bytes; a byte
       that the lead three or two places back says must be a 3rd or 4th byte is
       checked apart. AVX2 on x86-64 (chosen at run time); elsewhere the scalar loop
       in utf8.py does all the work. */
    #if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
    #include <immintrin.h>

    #define U8_TOO_SHORT (1 << 0)       /* 11______ then 0_______ or 11______ */
    #define U8_TOO_LONG (1 << 1)        /* 0_______ then 10______ */
    #define U8_OVERLONG_3 (1 << 2)      /* 11100000 100_____ */
    #define U8_TOO_LARGE (1 << 3)       /* 11110100 1001____ ... (above U+10FFFF) */
    #define U8_SURROGATE (1 << 4)       /* 11101101 101_____ */
    #define U8_OVERLONG_2 (1 << 5)      /* 1100000_ 10______ */
    #define U8_TOO_LARGE_1000 (1 << 6)  /* 11110101 1000____ ... */
    #define U8_OVERLONG_4 (1 << 6)      /* 11110000 1000____ */
    #define U8_TWO_CONTS (1 << 7)       /* 10______ 10______ */
    #define U8_CARRY (U8_TOO_SHORT | U8_TOO_LONG | U8_TWO_CONTS)
    #define U8_LARGE (U8_CARRY | U8_TOO_LARGE | U8_TOO_LARGE_1000)
    #define U8_TABLE(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p) _mm256_setr_epi8( \
        a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, \
        a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p)

    __attribute__((target("avx2")))
    static Py_ssize_t wsio_utf8_bulk_avx2(const unsigned char *p, Py_ssize_t n)
    {
        /* By the high nibble of the previous byte. */
        const __m256i byte_1_high = U8_TABLE(
            U8_TOO_LONG, U8_TOO_LONG, U8_TOO_LONG, U8_TOO_LONG,
            U8_TOO_LONG, U8_TOO_LONG, U8_TOO_LONG, U8_TOO_LONG,
            U8_TWO_CONTS, U8_TWO_CONTS, U8_TWO_CONTS, U8_TWO_CONTS,
            U8_TOO_SHORT | U8_OVERLONG_2,
            U8_TOO_SHORT,
            U8_TOO_SHORT | U8_OVERLONG_3 | U8_SURROGATE,
            U8_TOO_SHORT | U8_TOO_LARGE | U8_TOO_LARGE_1000 | U8_OVERLONG_4);
        /* By the low nibble of the previous byte. */
        const __m256i byte_1_low = U8_TABLE(
            U8_CARRY | U8_OVERLONG_3 | U8_OVERLONG_2 | U8_OVERLONG_4,
            U8_CARRY | U8_OVERLONG_2,
            U8_CARRY, U8_CARRY,
            U8_CARRY | U8_TOO_LARGE,
            U8_LARGE, U8_LARGE, U8_LARGE,
            U8_LARGE, U8_LARGE, U8_LARGE, U8_LARGE, U8_LARGE,
            U8_LARGE | U8_SURROGATE,
            U8_LARGE, U8_LARGE);
        /* By the high nibble of this byte. */
        const __m256i byte_2_high = U8_TABLE(
            U8_TOO_SHORT, U8_TOO_SHORT, U8_TOO_SHORT, U8_TOO_SHORT,
            U8_TOO_SHORT, U8_TOO_SHORT, U8_TOO_SHORT, U8_TOO_SHORT,
            U8_TOO_LONG | U8_OVERLONG_2 | U8_TWO_CONTS | U8_OVERLONG_3 | U8_TOO_LARGE_1000
                | U8_OVERLONG_4,
            U8_TOO_LONG | U8_OVERLONG_2 | U8_TWO_CONTS | U8_OVERLONG_3 | U8_TOO_LARGE,
            U8_TOO_LONG | U8_OVERLONG_2 | U8_TWO_CONTS | U8_SURROGATE | U8_TOO_LARGE,
            U8_TOO_LONG | U8_OVERLONG_2 | U8_TWO_CONTS | U8_SURROGATE | U8_TOO_LARGE,
            U8_TOO_SHORT, U8_TOO_SHORT, U8_TOO_SHORT, U8_TOO_SHORT);
        const __m256i low_nibble = _mm256_set1_epi8(0x0F);
        const __m256i top_bit = _mm256_set1_epi8((char)0x80);
        const __m256i third_lead = _mm256_set1_epi8(0xE0 - 0x80);
        const __m256i fourth_lead = _mm256_set1_epi8(0xF0 - 0x80);
        /* Bytes above these at the end of a block begin a character it cuts off. */
        const __m256i last_leads = _mm256_setr_epi8(
            -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            (char)(0xF0 - 1), (char)(0xE0 - 1), (char)(0xC0 - 1));
        __m256i prev = _mm256_setzero_si256();  /* p starts a character: as if after ASCII */
        __m256i prev_incomplete = _mm256_setzero_si256();
        __m256i input, error;
        Py_ssize_t i = 0, k;

        for (; i + 32 <= n; i += 32) {
            input = _mm256_loadu_si256((const __m256i *)(p + i));
            if (_mm256_movemask_epi8(input) == 0) {
                error = prev_incomplete;  /* all ASCII: only a cut-off character can fail */
            } else {
                __m256i joined = _mm256_permute2x128_si256(prev, input, 0x21);
                __m256i prev1 = _mm256_alignr_epi8(input, joined, 15);
                __m256i prev2 = _mm256_alignr_epi8(input, joined, 14);
                __m256i prev3 = _mm256_alignr_epi8(input, joined, 13);
                __m256i special = _mm256_and_si256(
                    _mm256_and_si256(
                        _mm256_shuffle_epi8(byte_1_high,
                            _mm256_and_si256(_mm256_srli_epi16(prev1, 4), low_nibble)),
                        _mm256_shuffle_epi8(byte_1_low, _mm256_and_si256(prev1, low_nibble))),
                    _mm256_shuffle_epi8(byte_2_high,
                        _mm256_and_si256(_mm256_srli_epi16(input, 4), low_nibble)));
                __m256i must_be_tail = _mm256_and_si256(
                    _mm256_or_si256(_mm256_subs_epu8(prev2, third_lead),
                                    _mm256_subs_epu8(prev3, fourth_lead)),
                    top_bit);
                error = _mm256_xor_si256(must_be_tail, special);
                prev_incomplete = _mm256_subs_epu8(input, last_leads);
            }
            if (!_mm256_testz_si256(error, error))
                break;
            prev = input;
        }
        /* Everything before the character that holds byte i - 1 is valid; the scalar loop
           goes on from there (that character may be cut off, or the next block bad). */
        if (i == 0)
            return 0;
        k = i - 1;
        while (k > 0 && (p[k] & 0xC0) == 0x80 && i - 1 - k < 3)
            k--;
        return (p[k] & 0xC0) == 0x80 ? 0 : k;
    }

    /* `inline` here and below: every module that cimports this file gets the C, and one
       that never calls it must not warn (nor keep it: an unused inline is dropped). */
    static inline Py_ssize_t wsio_utf8_bulk(const unsigned char *p, Py_ssize_t n)
    {
        if (n >= 64 && __builtin_cpu_supports("avx2"))
            return wsio_utf8_bulk_avx2(p, n);
        return 0;
    }
    #else
    static inline Py_ssize_t wsio_utf8_bulk(const unsigned char *p, Py_ssize_t n)
    {
        (void)p;
        (void)n;
        return 0;
    }
    #endif
    """
    # How many bytes at p (a character boundary) are valid UTF-8 up to a boundary.
    Py_ssize_t wsio_utf8_bulk(const unsigned char *p, Py_ssize_t n) nogil


cdef extern from *:
    """
    /* A str from n bytes already checked as UTF-8 (complete characters only). CPython's
       decoder checks again and, meeting a wide character after narrow ones, widens
       what it built so far; here one pass counts the characters and finds the highest
       byte (both vectorise), which gives the str's kind (RFC 3629 §3: a lead below 0xC4
       encodes at most U+00FF, below 0xF0 at most U+FFFF), then one pass writes it. */
    #define WSIO_UTF8_WIDEN(T)                                                         \
        do {                                                                           \
            T *out = (T *)PyUnicode_DATA(str);                                         \
            Py_ssize_t i = 0;                                                          \
            uint64_t word;                                                             \
            while (i < n) {                                                            \
                unsigned int b = p[i];                                                 \
                if (b < 0x80) {                                                        \
                    /* An ASCII run goes 8 bytes a turn. */                            \
                    while (i + 8 <= n) {                                               \
                        memcpy(&word, p + i, 8);                                       \
                        if (word & 0x8080808080808080ULL)                              \
                            break;                                                     \
                        for (int k = 0; k < 8; k++)                                    \
                            out[k] = (T)p[i + k];                                      \
                        out += 8;                                                      \
                        i += 8;                                                        \
                    }                                                                  \
                    while (i < n && p[i] < 0x80)                                       \
                        *out++ = (T)p[i++];                                            \
                } else if (b < 0xE0) {                                                 \
                    *out++ = (T)(((b & 0x1F) << 6) | (p[i + 1] & 0x3F));               \
                    i += 2;                                                            \
                } else if (b < 0xF0) {                                                 \
                    *out++ = (T)(((b & 0x0F) << 12) | ((p[i + 1] & 0x3F) << 6)         \
                                 | (p[i + 2] & 0x3F));                                 \
                    i += 3;                                                            \
                } else {                                                               \
                    *out++ = (T)(((b & 0x07) << 18) | ((p[i + 1] & 0x3F) << 12)        \
                                 | ((p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F));      \
                    i += 4;                                                            \
                }                                                                      \
            }                                                                          \
        } while (0)

    static inline PyObject *wsio_utf8_str(const unsigned char *p, Py_ssize_t n)
    {
        Py_ssize_t chars = n, i = 0;
        unsigned char top = 0, t, conts;
        PyObject *str;
        uint64_t word, any;
        /* The ASCII prefix (often all of it) is found 64 bytes a turn, with no counting. */
        for (; i + 64 <= n; i += 64) {
            any = 0;
            for (int k = 0; k < 8; k++) {
                memcpy(&word, p + i + 8 * k, 8);
                any |= word;
            }
            if (any & 0x8080808080808080ULL)
                break;
        }
        /* Byte-wide counters and maxima over 64-byte blocks: what the vectoriser turns
           into a few vector instructions a block (a Py_ssize_t count per byte it does not). */
        for (; i + 64 <= n; i += 64) {
            conts = 0;
            t = top;
            for (int k = 0; k < 64; k++) {
                conts += (p[i + k] & 0xC0) == 0x80;
                t = p[i + k] > t ? p[i + k] : t;
            }
            chars -= conts;
            top = t;
        }
        for (; i < n; i++) {
            chars -= (p[i] & 0xC0) == 0x80;
            top = p[i] > top ? p[i] : top;
        }
        if (top < 0x80) {
            str = PyUnicode_New(n, 0x7F);
            if (str != NULL && n)
                memcpy(PyUnicode_DATA(str), p, (size_t)n);
            return str;
        }
        str = PyUnicode_New(chars, top < 0xC4 ? 0xFF : (top < 0xF0 ? 0xFFFF : 0x10FFFF));
        if (str == NULL)
            return NULL;
        if (top < 0xC4)
            WSIO_UTF8_WIDEN(Py_UCS1);
        else if (top < 0xF0)
            WSIO_UTF8_WIDEN(Py_UCS2);
        else
            WSIO_UTF8_WIDEN(Py_UCS4);
        return str;
    }
    """
    # The str of n bytes at p that are valid UTF-8 (checked before: not checked again).
    object wsio_utf8_str(const unsigned char *p, Py_ssize_t n)


# Where a stream stands between two chunks.
cdef struct utf8_state:
    Py_ssize_t start    # absolute offset of the lead byte of the open sequence
    int need            # continuation bytes still missing (0: at a character boundary)
    int lo              # range allowed for the next continuation byte
    int hi

ctypedef utf8_state *state_ptr


cdef class Utf8Validator:
    cdef utf8_state _state      # compiled path
    cdef bytes _pending         # pure path: the open sequence's bytes so far
    cdef Py_ssize_t _count      # bytes fed so far
    cdef Py_ssize_t _error      # absolute offset of the first bad sequence, or -1


# Compiled-only helpers (plain functions in utf8.py; pure Python never calls them).
cdef Py_ssize_t _scan(cbytes_ptr p, Py_ssize_t n, Py_ssize_t base, state_ptr st) noexcept nogil
cdef Py_ssize_t _check(object data, Py_ssize_t base, state_ptr st, ssize_ptr size) except -2
