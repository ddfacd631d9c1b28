# The C-level API (include/pypool/pypool.h): the table of function pointers
# that C extensions and Cython modules fetch from the capsule ``_C_API``.
#
# Every entry checks all of its arguments before it touches memory -
# pointers, dtypes, shapes, window geometry (resolve_axis and the other
# checks of geometry.pxi, which the Python layer calls too), overlaps and
# index ranges - and returns a status, leaving a detail for the calling
# thread. Then it turns the caller's tensors into the kernels' 5-D views
# (B, D, H, W, V) the way the Python layer does with NumPy: axes merge where
# the strides allow (the rule of ndarray.reshape), otherwise the tensor is
# copied to a C-contiguous scratch; dtypes the kernels do not take (float16,
# and integer gradients) are converted through a scratch laid out as
# ndarray.astype lays it out (order "K"). So a C call runs the same kernels
# on the same views as the equivalent Python call, and gives the same bits.
# Nothing here touches Python objects: every entry runs without the GIL.

from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport (int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
                          uint64_t, uintptr_t, INT64_MAX)
from libc.stdlib cimport free, malloc
from libc.string cimport memset

# Offsets (in elements) a tensor may span: byte offsets of 8-byte elements
# stay far inside int64, and strides times sizes never overflow.
cdef int64_t SPAN_LIMIT = 576460752303423488   # 2**59


# ----------------------------------------------------------------------------- dtypes

cdef inline int itemsize_of(int dtype) noexcept nogil:
    if dtype == PYPOOL_BOOL or dtype == PYPOOL_INT8 or dtype == PYPOOL_UINT8:
        return 1
    if dtype == PYPOOL_INT16 or dtype == PYPOOL_UINT16 or dtype == PYPOOL_FLOAT16:
        return 2
    if dtype == PYPOOL_INT32 or dtype == PYPOOL_UINT32 or dtype == PYPOOL_FLOAT32:
        return 4
    return 8


cdef const char* dtype_name(int dtype) noexcept nogil:
    if dtype == PYPOOL_BOOL:
        return "bool"
    if dtype == PYPOOL_INT8:
        return "int8"
    if dtype == PYPOOL_INT16:
        return "int16"
    if dtype == PYPOOL_INT32:
        return "int32"
    if dtype == PYPOOL_INT64:
        return "int64"
    if dtype == PYPOOL_UINT8:
        return "uint8"
    if dtype == PYPOOL_UINT16:
        return "uint16"
    if dtype == PYPOOL_UINT32:
        return "uint32"
    if dtype == PYPOOL_UINT64:
        return "uint64"
    if dtype == PYPOOL_FLOAT16:
        return "float16"
    if dtype == PYPOOL_FLOAT32:
        return "float32"
    return "float64"


cdef inline bint is_float(int dtype) noexcept nogil:
    return dtype == PYPOOL_FLOAT16 or dtype == PYPOOL_FLOAT32 or dtype == PYPOOL_FLOAT64


cdef inline int float_result(int dtype) noexcept nogil:
    """Averages and gradients keep float16/32/64 and are float64 for integers and bool."""
    return dtype if is_float(dtype) else PYPOOL_FLOAT64


cdef inline int kernel_float(int dtype) noexcept nogil:
    """Kernels compute float32 results in float32 and every other float in float64."""
    return PYPOOL_FLOAT32 if dtype == PYPOOL_FLOAT32 else PYPOOL_FLOAT64


cdef inline int kernel_input(int dtype) noexcept nogil:
    """What the kernels read: bool as uint8, float16 widened (exactly) to float32."""
    if dtype == PYPOOL_BOOL:
        return PYPOOL_UINT8
    if dtype == PYPOOL_FLOAT16:
        return PYPOOL_FLOAT32
    return dtype


cdef inline int unsigned_of_size(int size) noexcept nogil:
    """max_unpool moves values bit for bit, as the unsigned integer of their size."""
    if size == 1:
        return PYPOOL_UINT8
    if size == 2:
        return PYPOOL_UINT16
    if size == 4:
        return PYPOOL_UINT32
    return PYPOOL_UINT64


# ----------------------------------------------------------------------------- tensors

cdef struct Tensor:
    # A checked pypool_tensor: element strides filled in, size known.
    char* data
    const char* name
    int dtype
    int ndim
    int64_t size
    int64_t shape[PYPOOL_MAX_NDIM]
    int64_t strides[PYPOOL_MAX_NDIM]


cdef inline int64_t saturating_mul(int64_t a, int64_t b) noexcept nogil:
    """a * b for a, b >= 0, capped at INT64_MAX (work estimates)."""
    if a == 0 or b == 0:
        return 0
    if a > INT64_MAX // b:
        return INT64_MAX
    return a * b


cdef inline int64_t abs_i64(int64_t v) noexcept nogil:
    return v if v >= 0 else -v


cdef const char* layout_name(bint channels_last) noexcept nogil:
    return "'channels_last'" if channels_last else "'channels_first'"


cdef int check_shape_array(int ndim, const int64_t* shape, const char* name) noexcept nogil:
    """An ndim count and its sizes: 0 <= ndim <= PYPOOL_MAX_NDIM, 0 <= size < 2**62."""
    cdef int i
    if ndim < 0 or ndim > PYPOOL_MAX_NDIM:
        return pypool_fail(PYPOOL_ERR_SHAPE, "%s has %d dims; expected 0 to %d", name, ndim,
                           <int>PYPOOL_MAX_NDIM)
    if ndim > 0 and shape == NULL:
        return pypool_fail(PYPOOL_ERR_NULL, "%s is NULL", name)
    for i in range(ndim):
        if shape[i] < 0:
            return pypool_fail(PYPOOL_ERR_SHAPE, "%s[%d] is %lld; sizes must be >= 0", name, i,
                               <long long>shape[i])
        if shape[i] >= SIZE_LIMIT:
            return pypool_fail(PYPOOL_ERR_OVERFLOW, "%s[%d] is %lld; sizes must be below 2**62",
                               name, i, <long long>shape[i])
    return PYPOOL_OK


cdef int check_tensor(const pypool_tensor* t, const char* name, Tensor* out) noexcept nogil:
    """Validate a caller's tensor and copy it into ``out``; nothing is dereferenced but
    the struct, its shape and its strides."""
    cdef int i, st
    cdef int64_t n, size = 1, span = 0, step, s
    cdef char buf[200]
    if t == NULL:
        return pypool_fail(PYPOOL_ERR_NULL, "%s is NULL", name)
    if t.dtype < PYPOOL_BOOL or t.dtype > PYPOOL_FLOAT64:
        return pypool_fail(PYPOOL_ERR_DTYPE, "%s.dtype is %d, which is no pypool_dtype", name,
                           <int>t.dtype)
    if t.ndim < 0 or t.ndim > PYPOOL_MAX_NDIM:
        return pypool_fail(PYPOOL_ERR_SHAPE, "%s.ndim is %d; expected 0 to %d", name,
                           <int>t.ndim, <int>PYPOOL_MAX_NDIM)
    if t.ndim > 0 and t.shape == NULL:
        return pypool_fail(PYPOOL_ERR_NULL, "%s.shape is NULL", name)
    for i in range(t.ndim):
        n = t.shape[i]
        if n < 0:
            return pypool_fail(PYPOOL_ERR_SHAPE, "%s.shape[%d] is %lld; sizes must be >= 0",
                               name, i, <long long>n)
        if n >= SIZE_LIMIT:
            return pypool_fail(PYPOOL_ERR_OVERFLOW, "%s.shape[%d] is %lld; sizes must be below 2**62",
                               name, i, <long long>n)
        out.shape[i] = n
        if n == 0:
            size = 0
    if size != 0:
        for i in range(t.ndim):
            if size > (SIZE_LIMIT - 1) // out.shape[i]:
                return pypool_fail(PYPOOL_ERR_OVERFLOW, "%s has shape %s: more than 2**62 elements",
                                   name, pypool_format_shape(buf, sizeof(buf), t.ndim, out.shape))
            size *= out.shape[i]
    out.data = <char*>t.data
    out.name = name
    out.dtype = t.dtype
    out.ndim = t.ndim
    out.size = size
    step = 1
    for i in range(t.ndim - 1, -1, -1):
        if t.strides == NULL:
            out.strides[i] = step if size else 0
            step *= out.shape[i] if size else 1
        else:
            s = t.strides[i]
            if s <= -SIZE_LIMIT or s >= SIZE_LIMIT:
                return pypool_fail(PYPOOL_ERR_OVERFLOW,
                                   "%s.strides[%d] is %lld; strides must be below 2**62 in magnitude",
                                   name, i, <long long>s)
            out.strides[i] = s
    if size == 0:
        return PYPOOL_OK
    for i in range(t.ndim):
        if out.shape[i] > 1:
            step = out.strides[i] if out.strides[i] >= 0 else -out.strides[i]
            if step > 0 and out.shape[i] - 1 > (SPAN_LIMIT - span) // step:
                return pypool_fail(PYPOOL_ERR_OVERFLOW,
                                   "%s reaches elements more than 2**59 apart; check its strides",
                                   name)
            span += step * (out.shape[i] - 1)
    if out.data == NULL:
        return pypool_fail(PYPOOL_ERR_NULL, "%s.data is NULL (the tensor has %lld elements)",
                           name, <long long>size)
    if (<uintptr_t>out.data) % <uintptr_t>itemsize_of(out.dtype) != 0:
        return pypool_fail(PYPOOL_ERR_ARGUMENT, "%s.data is not aligned to its %d-byte elements",
                           name, itemsize_of(out.dtype))
    return PYPOOL_OK


cdef int expect_shape(const Tensor* t, int ndim, const int64_t* shape,
                      const char* why) noexcept nogil:
    """t has exactly this shape, else PYPOOL_ERR_SHAPE naming both."""
    cdef int i
    cdef char got[200]
    cdef char want[200]
    cdef bint same = t.ndim == ndim
    if same:
        for i in range(ndim):
            if t.shape[i] != shape[i]:
                same = False
                break
    if same:
        return PYPOOL_OK
    return pypool_fail(PYPOOL_ERR_SHAPE, "%s has shape %s; expected %s%s", t.name,
                       pypool_format_shape(got, sizeof(got), t.ndim, t.shape),
                       pypool_format_shape(want, sizeof(want), ndim, shape), why)


cdef void byte_span(const Tensor* t, uintptr_t* lo, uintptr_t* hi) noexcept nogil:
    """The bytes [lo, hi) a non-empty tensor can touch."""
    cdef int i
    cdef int64_t item = itemsize_of(t.dtype), reach
    lo[0] = <uintptr_t>t.data
    hi[0] = <uintptr_t>t.data + <uintptr_t>item
    for i in range(t.ndim):
        reach = t.strides[i] * (t.shape[i] - 1) * item
        if reach < 0:
            lo[0] -= <uintptr_t>(-reach)
        else:
            hi[0] += <uintptr_t>reach


cdef int check_apart(const Tensor* out, const Tensor* other) noexcept nogil:
    """An output must not share memory with another tensor (the byte ranges they
    span may not intersect: a conservative test, exact for dense tensors)."""
    cdef uintptr_t alo, ahi, blo, bhi
    if other == NULL or out.size == 0 or other.size == 0:
        return PYPOOL_OK
    byte_span(out, &alo, &ahi)
    byte_span(other, &blo, &bhi)
    if alo < bhi and blo < ahi:
        return pypool_fail(PYPOOL_ERR_OVERLAP, "%s overlaps %s; pass separate buffers",
                           out.name, other.name)
    return PYPOOL_OK


cdef int check_no_self_overlap(const Tensor* t) noexcept nogil:
    """No two elements of an output may share memory (results would depend on the
    order of writes). Sufficient test: sorted by |stride|, each axis steps past
    everything the smaller ones reach."""
    cdef int axes[PYPOOL_MAX_NDIM]
    cdef int i, j, k, n = 0
    cdef int64_t reach = 0, step
    if t.size == 0:
        return PYPOOL_OK
    for i in range(t.ndim):
        if t.shape[i] > 1:
            axes[n] = i
            n += 1
    # insertion sort by |stride| (at most 64 axes)
    for i in range(1, n):
        k = axes[i]
        j = i - 1
        while j >= 0 and abs_i64(t.strides[axes[j]]) > abs_i64(t.strides[k]):
            axes[j + 1] = axes[j]
            j -= 1
        axes[j + 1] = k
    for i in range(n):
        step = abs_i64(t.strides[axes[i]])
        if step <= reach:
            return pypool_fail(PYPOOL_ERR_OVERLAP,
                               "%s has overlapping elements (stride %lld on axis %d); outputs "
                               "need a distinct place for every element", t.name,
                               <long long>t.strides[axes[i]], axes[i])
        reach += step * (t.shape[axes[i]] - 1)
    return PYPOOL_OK


cdef int check_outputs(const Tensor* out, const Tensor* in1, const Tensor* in2,
                       const Tensor* out2) noexcept nogil:
    """out (and out2, may be NULL) apart from the inputs, each other and themselves."""
    cdef int st = check_no_self_overlap(out)
    if st == PYPOOL_OK:
        st = check_apart(out, in1)
    if st == PYPOOL_OK:
        st = check_apart(out, in2)
    if st == PYPOOL_OK and out2 != NULL:
        st = check_no_self_overlap(out2)
        if st == PYPOOL_OK:
            st = check_apart(out2, in1)
        if st == PYPOOL_OK:
            st = check_apart(out2, in2)
        if st == PYPOOL_OK:
            st = check_apart(out2, out)
    return st


# ----------------------------------------------------------------------------- element copies

cdef inline double load_double(const char* p, int dtype) noexcept nogil:
    if dtype == PYPOOL_FLOAT64:
        return (<const double*>p)[0]
    if dtype == PYPOOL_FLOAT32:
        return (<const float*>p)[0]
    if dtype == PYPOOL_FLOAT16:
        return pypool_half_to_double((<const uint16_t*>p)[0])
    if dtype == PYPOOL_BOOL:
        return 1.0 if (<const uint8_t*>p)[0] != 0 else 0.0
    if dtype == PYPOOL_INT8:
        return (<const int8_t*>p)[0]
    if dtype == PYPOOL_INT16:
        return (<const int16_t*>p)[0]
    if dtype == PYPOOL_INT32:
        return (<const int32_t*>p)[0]
    if dtype == PYPOOL_INT64:
        return <double>(<const int64_t*>p)[0]
    if dtype == PYPOOL_UINT8:
        return (<const uint8_t*>p)[0]
    if dtype == PYPOOL_UINT16:
        return (<const uint16_t*>p)[0]
    if dtype == PYPOOL_UINT32:
        return (<const uint32_t*>p)[0]
    return <double>(<const uint64_t*>p)[0]


cdef void copy_run(const char* src, int sdtype, int64_t sstride, char* dst, int ddtype,
                   int64_t dstride, int64_t n) noexcept nogil:
    """n elements from src (step sstride elements) to dst (step dstride): a bit copy
    when the dtypes agree, else a conversion to the float dtype ddtype, giving the
    bits NumPy's astype gives."""
    cdef int64_t i
    cdef int size = itemsize_of(sdtype)
    cdef double v
    if sdtype == ddtype:
        if size == 1:
            for i in range(n):
                (<uint8_t*>dst)[i * dstride] = (<const uint8_t*>src)[i * sstride]
        elif size == 2:
            for i in range(n):
                (<uint16_t*>dst)[i * dstride] = (<const uint16_t*>src)[i * sstride]
        elif size == 4:
            for i in range(n):
                (<uint32_t*>dst)[i * dstride] = (<const uint32_t*>src)[i * sstride]
        else:
            for i in range(n):
                (<uint64_t*>dst)[i * dstride] = (<const uint64_t*>src)[i * sstride]
        return
    # float16 <-> float32 on bits, so that NaN payloads survive (as in NumPy).
    if sdtype == PYPOOL_FLOAT16 and ddtype == PYPOOL_FLOAT32:
        for i in range(n):
            (<uint32_t*>dst)[i * dstride] = pypool_half_to_float_bits(
                (<const uint16_t*>src)[i * sstride])
        return
    if sdtype == PYPOOL_FLOAT32 and ddtype == PYPOOL_FLOAT16:
        for i in range(n):
            (<uint16_t*>dst)[i * dstride] = pypool_float_bits_to_half(
                (<const uint32_t*>src)[i * sstride])
        return
    for i in range(n):
        v = load_double(src + i * sstride * size, sdtype)
        if ddtype == PYPOOL_FLOAT64:
            (<double*>dst)[i * dstride] = v
        elif ddtype == PYPOOL_FLOAT32:
            (<float*>dst)[i * dstride] = <float>v
        else:
            (<uint16_t*>dst)[i * dstride] = pypool_double_to_half(v)


cdef void copy_elements(const Tensor* src, const Tensor* dst) noexcept nogil:
    """Every element of src into dst (same shape, non-empty), walking src in C order."""
    cdef int64_t idx[PYPOOL_MAX_NDIM]
    cdef int ndim = src.ndim, a, inner = src.ndim - 1
    cdef int64_t soff = 0, doff = 0
    cdef int ssize = itemsize_of(src.dtype), dsize = itemsize_of(dst.dtype)
    if ndim == 0:
        copy_run(src.data, src.dtype, 0, dst.data, dst.dtype, 0, 1)
        return
    for a in range(ndim):
        idx[a] = 0
    while True:
        copy_run(src.data + soff * ssize, src.dtype, src.strides[inner],
                 dst.data + doff * dsize, dst.dtype, dst.strides[inner], src.shape[inner])
        a = inner - 1
        while a >= 0:
            idx[a] += 1
            soff += src.strides[a]
            doff += dst.strides[a]
            if idx[a] < src.shape[a]:
                break
            soff -= src.strides[a] * src.shape[a]
            doff -= dst.strides[a] * dst.shape[a]
            idx[a] = 0
            a -= 1
        if a < 0:
            return


cdef void c_order_strides(const Tensor* t, int64_t* strides) noexcept nogil:
    cdef int i
    cdef int64_t step = 1
    for i in range(t.ndim - 1, -1, -1):
        strides[i] = step
        step *= t.shape[i]


cdef bint has_strides(const Tensor* t, bint fortran) noexcept nogil:
    """Is t C- (or Fortran-) contiguous, ignoring axes of size 1 (NumPy's flags)?"""
    cdef int i, a
    cdef int64_t step = 1
    for i in range(t.ndim):
        a = i if fortran else t.ndim - 1 - i
        if t.shape[a] != 1:
            if t.strides[a] != step:
                return False
            step *= t.shape[a]
    return True


cdef void keep_order_strides(const Tensor* t, int64_t* strides) noexcept nogil:
    """Strides of a dense copy that keeps t's memory order: NumPy's order="K" (C order
    for C-contiguous input, Fortran for Fortran-contiguous, else the axes sorted by
    decreasing |stride|, ties in axis order)."""
    cdef int perm[PYPOOL_MAX_NDIM]
    cdef int i, j, k
    cdef int64_t step = 1
    if has_strides(t, False):
        c_order_strides(t, strides)
        return
    if has_strides(t, True):
        for i in range(t.ndim):
            strides[i] = step
            step *= t.shape[i]
        return
    for i in range(t.ndim):
        k = i
        j = i - 1
        while j >= 0 and abs_i64(t.strides[perm[j]]) < abs_i64(t.strides[k]):
            perm[j + 1] = perm[j]
            j -= 1
        perm[j + 1] = k
    for i in range(t.ndim - 1, -1, -1):
        strides[perm[i]] = step
        step *= t.shape[perm[i]]


cdef void* alloc_elements(int64_t count, int itemsize) noexcept nogil:
    if count > SPAN_LIMIT:
        return NULL
    return malloc(<size_t>(count if count > 0 else 1) * <size_t>itemsize)


# ----------------------------------------------------------------------------- 5-D views

cdef struct Groups:
    # The caller's axes [lo[j], hi[j]) that form axis j of the kernels' (B, D, H, W, V)
    # view; an empty range is an axis of size 1.
    int lo[5]
    int hi[5]


cdef void make_groups(Groups* g, int nlead, int nspatial, bint merge, bint channels_last,
                      int ndim) noexcept nogil:
    """Lead axes -> B; spatial axes -> D, H, W (last ones), or all merged into W;
    channels_last's last axis -> V."""
    cdef int j, a
    g.lo[0] = 0
    g.hi[0] = nlead
    for j in range(3):
        a = nlead + nspatial - 3 + j
        if merge:
            g.lo[j + 1] = nlead
            g.hi[j + 1] = nlead + nspatial if j == 2 else nlead
        elif a < nlead:
            g.lo[j + 1] = nlead
            g.hi[j + 1] = nlead
        else:
            g.lo[j + 1] = a
            g.hi[j + 1] = a + 1
    g.lo[4] = ndim - 1 if channels_last else ndim
    g.hi[4] = ndim


cdef bint merge_group(const Tensor* t, int lo, int hi, int64_t* n, int64_t* s) noexcept nogil:
    """Axes [lo, hi) as one axis, when their strides allow it (ndarray.reshape's rule:
    each axis of size > 1 steps over the whole of the next one)."""
    cdef int i, inner = -1
    cdef int64_t size = 1
    s[0] = 0
    for i in range(hi - 1, lo - 1, -1):
        if t.shape[i] == 1:
            continue
        if inner < 0:
            s[0] = t.strides[i]
        elif t.strides[i] != t.strides[inner] * t.shape[inner]:
            return False
        inner = i
        size *= t.shape[i]
    n[0] = size
    return True


cdef bint view5_of(const Tensor* t, const Groups* g, Strided5* v) noexcept nogil:
    cdef int j
    for j in range(5):
        if not merge_group(t, g.lo[j], g.hi[j], &v.n[j], &v.s[j]):
            return False
    return True


cdef void empty_view5(const Tensor* t, const Groups* g, Strided5* v) noexcept nogil:
    """The view of a tensor without elements: only its sizes matter."""
    cdef int j, i
    for j in range(5):
        v.n[j] = 1
        for i in range(g.lo[j], g.hi[j]):
            v.n[j] = saturating_mul(v.n[j], t.shape[i])
    v.s[4] = 1
    for j in range(3, -1, -1):
        v.s[j] = 0


cdef struct Operand:
    # A tensor as a kernel sees it.
    char* data        # element (0, 0, 0, 0, 0)
    Strided5 v
    void* scratch     # memory to free afterwards (the caller's own memory when NULL)


cdef inline void release(Operand* op) noexcept nogil:
    free(op.scratch)
    op.scratch = NULL


cdef int prepare_input(const Tensor* t, const Groups* g, int kdtype, Operand* op) noexcept nogil:
    """The kernels' view of an input in dtype kdtype: the caller's memory when the
    dtype matches and the axes merge, else a scratch copy (converted, then made
    C-contiguous if still needed) - what astype and reshape do in the Python layer."""
    cdef Tensor conv, dense
    cdef const Tensor* src = t
    cdef void* buf
    op.scratch = NULL
    if t.size == 0:
        op.data = t.data
        empty_view5(t, g, &op.v)
        return PYPOOL_OK
    if t.dtype != kdtype:
        buf = alloc_elements(t.size, itemsize_of(kdtype))
        if buf == NULL:
            return pypool_fail(PYPOOL_ERR_NOMEM, "cannot allocate a %s copy of %s",
                               dtype_name(kdtype), t.name)
        conv = t[0]
        conv.data = <char*>buf
        conv.dtype = kdtype
        keep_order_strides(t, conv.strides)
        copy_elements(t, &conv)
        op.scratch = buf
        src = &conv
    if view5_of(src, g, &op.v):
        op.data = src.data
        return PYPOOL_OK
    buf = alloc_elements(t.size, itemsize_of(kdtype))
    if buf == NULL:
        release(op)
        return pypool_fail(PYPOOL_ERR_NOMEM, "cannot allocate a contiguous copy of %s", t.name)
    dense = src[0]
    dense.data = <char*>buf
    c_order_strides(src, dense.strides)
    copy_elements(src, &dense)
    release(op)
    op.scratch = buf
    op.data = dense.data
    view5_of(&dense, g, &op.v)
    return PYPOOL_OK


cdef int prepare_output(const Tensor* t, const Groups* g, int kdtype, Operand* op) noexcept nogil:
    """Where a kernel writes a non-empty output: the caller's memory when the dtype
    matches and the axes merge, else a C-contiguous scratch (see finish_output)."""
    cdef Tensor dense
    op.scratch = NULL
    if t.dtype == kdtype and view5_of(t, g, &op.v):
        op.data = t.data
        return PYPOOL_OK
    op.scratch = alloc_elements(t.size, itemsize_of(kdtype))
    if op.scratch == NULL:
        return pypool_fail(PYPOOL_ERR_NOMEM, "cannot allocate a scratch %s", t.name)
    dense = t[0]
    dense.data = <char*>op.scratch
    dense.dtype = kdtype
    c_order_strides(t, dense.strides)
    op.data = dense.data
    view5_of(&dense, g, &op.v)
    return PYPOOL_OK


cdef void finish_output(const Tensor* t, int kdtype, const Operand* op) noexcept nogil:
    """Copy (converting) a scratch result into the caller's output."""
    cdef Tensor dense
    if op.scratch == NULL:
        return
    dense = t[0]
    dense.data = <char*>op.scratch
    dense.dtype = kdtype
    c_order_strides(t, dense.strides)
    copy_elements(&dense, t)


cdef inline void no_operand(Operand* op) noexcept nogil:
    op.data = NULL
    op.scratch = NULL


# ----------------------------------------------------------------------------- geometry

cdef struct Plan:
    # What a call decided before touching memory.
    int nlead               # leading (batch/channel) axes
    int rank                # spatial axes
    bint channels_last
    pypool_axis ax[3]       # the kernels' D, H, W axes; unused leading ones have size 1
    int out_ndim
    int64_t out_shape[PYPOOL_MAX_NDIM]
    int64_t taps            # taps per window (product of kernel sizes)
    int64_t work            # input reads, for the thread count


cdef inline void unit_axis(pypool_axis* a) noexcept nogil:
    a.in_size = 1
    a.out_size = 1
    a.kernel = 1
    a.stride = 1
    a.dilation = 1
    a.pad_begin = 0
    a.pad_end = 0


cdef int check_params(const pypool_params* p) noexcept nogil:
    if p == NULL:
        return pypool_fail(PYPOOL_ERR_NULL, "params is NULL")
    if p.layout != PYPOOL_CHANNELS_FIRST and p.layout != PYPOOL_CHANNELS_LAST:
        return pypool_fail(PYPOOL_ERR_LAYOUT, "params.layout is %d; expected "
                           "PYPOOL_CHANNELS_FIRST (0) or PYPOOL_CHANNELS_LAST (1)", <int>p.layout)
    if p.num_threads < 0:
        return pypool_fail(PYPOOL_ERR_ARGUMENT, "params.num_threads is %d; expected 0 (the "
                           "OpenMP default) or a thread count >= 1", <int>p.num_threads)
    return PYPOOL_OK


cdef int check_rank(const pypool_params* p, int most, const char* what) noexcept nogil:
    if p.rank < 1 or p.rank > most:
        return pypool_fail(PYPOOL_ERR_RANK, "params.rank is %d; %s takes 1 to %d spatial axes",
                           <int>p.rank, what, most)
    return PYPOOL_OK


cdef int split_axes(const pypool_params* p, int ndim, const int64_t* shape, const char* name,
                    Plan* plan) noexcept nogil:
    """Lead / spatial / channel axes of a shape for a pool of rank p.rank."""
    cdef bint cl = p.layout == PYPOOL_CHANNELS_LAST
    cdef int need = p.rank + (1 if cl else 0)
    cdef char buf[200]
    if ndim < need:
        return pypool_fail(PYPOOL_ERR_SHAPE, "%s has shape %s (%d dims); a %d-D pool with "
                           "layout=%s needs at least %d dims", name,
                           pypool_format_shape(buf, sizeof(buf), ndim, shape), ndim,
                           <int>p.rank, layout_name(cl), need)
    plan.rank = p.rank
    plan.channels_last = cl
    plan.nlead = ndim - need
    return PYPOOL_OK


cdef int axis_failure(int st, int i, const pypool_axis* a) noexcept nogil:
    """A detail for a status of resolve_axis on spatial axis i."""
    cdef long long L = a.in_size, k = a.kernel, s = a.stride, d = a.dilation
    cdef long long pb = a.pad_begin, pe = a.pad_end
    if st == PYPOOL_ERR_KERNEL:
        return pypool_fail(st, "params.kernel_size[%d] is %lld; it must be >= 1", i, k)
    if st == PYPOOL_ERR_STRIDE:
        return pypool_fail(st, "params.stride[%d] is %lld; it must be >= 1 (or 0 for "
                           "kernel_size)", i, s)
    if st == PYPOOL_ERR_DILATION:
        return pypool_fail(st, "params.dilation[%d] is %lld; it must be >= 1", i, d)
    if st == PYPOOL_ERR_PAD_NEGATIVE:
        return pypool_fail(st, "padding (%lld, %lld) on spatial axis %d is negative", pb, pe, i)
    if st == PYPOOL_ERR_PAD_TOO_LARGE:
        return pypool_fail(st, "padding (%lld, %lld) on spatial axis %d (input size %lld, "
                           "kernel_size %lld, stride %lld, dilation %lld) is too large: each pad "
                           "must be smaller than the effective kernel extent "
                           "(kernel_size-1)*dilation+1 = %lld", pb, pe, i, L, k, s, d,
                           (k - 1) * d + 1)
    if st == PYPOOL_ERR_EMPTY_OUTPUT:
        return pypool_fail(st, "output size on spatial axis %d (input size %lld, kernel_size "
                           "%lld, stride %lld, dilation %lld) with padding (%lld, %lld) would "
                           "be below 1", i, L, k, s, d, pb, pe)
    if st == PYPOOL_ERR_OVERFLOW:
        return pypool_fail(st, "sizes on spatial axis %d (input size %lld, kernel_size %lld, "
                           "stride %lld, dilation %lld) overflow 64-bit arithmetic",
                           i, L, k, s, d)
    return pypool_fail(st, "invalid window on spatial axis %d", i)


cdef int window_plan(const pypool_params* p, int ndim, const int64_t* shape, const char* name,
                     Plan* plan) noexcept nogil:
    """Check the window parameters against an input shape and resolve every axis with
    resolve_axis (the Python layer's code): output shape, pads, work."""
    cdef int i, st
    cdef pypool_axis* a
    cdef int64_t k
    st = check_params(p)
    if st == PYPOOL_OK:
        st = check_rank(p, 3, "windowed pooling")
    if st != PYPOOL_OK:
        return st
    if p.pad_mode < PYPOOL_PAD_EXPLICIT or p.pad_mode > PYPOOL_PAD_SAME_LOWER:
        return pypool_fail(PYPOOL_ERR_ARGUMENT, "params.pad_mode is %d; expected "
                           "PYPOOL_PAD_EXPLICIT, PYPOOL_PAD_SAME_UPPER or PYPOOL_PAD_SAME_LOWER",
                           <int>p.pad_mode)
    st = split_axes(p, ndim, shape, name, plan)
    if st != PYPOOL_OK:
        return st
    plan.taps = 1
    for i in range(3 - plan.rank):
        unit_axis(&plan.ax[i])
    for i in range(plan.rank):
        a = &plan.ax[3 - plan.rank + i]
        k = p.kernel_size[i]
        a.in_size = shape[plan.nlead + i]
        a.out_size = 0
        a.kernel = k
        a.stride = p.stride[i] if p.stride[i] != 0 else k
        a.dilation = p.dilation[i]
        a.pad_begin = p.pad_begin[i] if p.pad_mode == PYPOOL_PAD_EXPLICIT else 0
        a.pad_end = p.pad_end[i] if p.pad_mode == PYPOOL_PAD_EXPLICIT else 0
        st = resolve_axis(a, <pypool_pad_mode>p.pad_mode, p.ceil_mode != 0)
        if st != PYPOOL_OK:
            return axis_failure(st, i, a)
        plan.taps = saturating_mul(plan.taps, k)
    plan.out_ndim = ndim
    plan.work = plan.taps
    for i in range(ndim):
        if plan.nlead <= i < plan.nlead + plan.rank:
            plan.out_shape[i] = plan.ax[3 - plan.rank + i - plan.nlead].out_size
        else:
            plan.out_shape[i] = shape[i]
        plan.work = saturating_mul(plan.work, plan.out_shape[i])
    return PYPOOL_OK


cdef int adaptive_plan(const pypool_params* p, const Tensor* inp, const Tensor* outp,
                       Plan* plan) noexcept nogil:
    """Adaptive pooling from inp's shape to outp's spatial sizes (check_adaptive_axis)."""
    cdef int i, st
    cdef int64_t L, O
    cdef char a[200]
    cdef char b[200]
    st = check_params(p)
    if st == PYPOOL_OK:
        st = check_rank(p, 3, "adaptive pooling")
    if st == PYPOOL_OK:
        st = split_axes(p, inp.ndim, inp.shape, inp.name, plan)
    if st != PYPOOL_OK:
        return st
    if outp.ndim != inp.ndim:
        return pypool_fail(PYPOOL_ERR_SHAPE, "%s has %d dims; expected %d like %s (the output "
                           "size is read from its spatial axes)", outp.name, outp.ndim,
                           inp.ndim, inp.name)
    for i in range(inp.ndim):
        if (i < plan.nlead or i >= plan.nlead + plan.rank) and outp.shape[i] != inp.shape[i]:
            return pypool_fail(PYPOOL_ERR_SHAPE, "%s has shape %s; it must match %s's shape %s "
                               "outside the spatial axes", outp.name,
                               pypool_format_shape(a, sizeof(a), outp.ndim, outp.shape), inp.name,
                               pypool_format_shape(b, sizeof(b), inp.ndim, inp.shape))
    for i in range(3 - plan.rank):
        unit_axis(&plan.ax[i])
    for i in range(plan.rank):
        L = inp.shape[plan.nlead + i]
        O = outp.shape[plan.nlead + i]
        st = check_adaptive_axis(L, O)
        if st == PYPOOL_ERR_EMPTY_OUTPUT:
            return pypool_fail(st, "%s has size %lld on spatial axis %d; adaptive pooling needs "
                               "an output size >= 1", outp.name, <long long>O, i)
        if st == PYPOOL_ERR_SHAPE:
            return pypool_fail(st, "%s has size 0 on spatial axis %d; adaptive pooling needs a "
                               "non-empty input there", inp.name, i)
        if st != PYPOOL_OK:
            return pypool_fail(st, "input size %lld times output size %lld on spatial axis %d "
                               "overflows 2**62", <long long>L, <long long>O, i)
        unit_axis(&plan.ax[3 - plan.rank + i])
        plan.ax[3 - plan.rank + i].in_size = L
        plan.ax[3 - plan.rank + i].out_size = O
    plan.out_ndim = outp.ndim
    for i in range(outp.ndim):
        plan.out_shape[i] = outp.shape[i]
    plan.taps = 1
    plan.work = inp.size
    return PYPOOL_OK


cdef int global_plan(const pypool_params* p, const Tensor* t, Plan* plan) noexcept nogil:
    """Global pooling of t: (N, C, *spatial) or (N, *spatial, C), spatial axes merged."""
    cdef int i, st
    cdef int64_t size = 1
    cdef bint cl
    cdef char buf[200]
    st = check_params(p)
    if st != PYPOOL_OK:
        return st
    cl = p.layout == PYPOOL_CHANNELS_LAST
    if t.ndim < 3:
        return pypool_fail(PYPOOL_ERR_SHAPE, "%s has shape %s; global pooling needs at least "
                           "3 dims %s", t.name, pypool_format_shape(buf, sizeof(buf), t.ndim, t.shape),
                           "(N, *spatial, C)" if cl else "(N, C, *spatial)")
    plan.channels_last = cl
    plan.nlead = 1 if cl else 2
    plan.rank = t.ndim - 2
    for i in range(plan.nlead, plan.nlead + plan.rank):
        size = saturating_mul(size, t.shape[i])
    if size == 0:
        return pypool_fail(PYPOOL_ERR_SHAPE, "%s has shape %s; global pooling needs non-empty "
                           "spatial axes", t.name,
                           pypool_format_shape(buf, sizeof(buf), t.ndim, t.shape))
    unit_axis(&plan.ax[0])
    unit_axis(&plan.ax[1])
    unit_axis(&plan.ax[2])
    plan.ax[2].in_size = size
    plan.ax[2].kernel = size
    # The result without keepdims; check_global_result also takes the keepdims form.
    plan.out_ndim = 2
    plan.out_shape[0] = t.shape[0]
    plan.out_shape[1] = t.shape[t.ndim - 1] if cl else t.shape[1]
    plan.taps = size
    plan.work = t.size
    return PYPOOL_OK


cdef int check_global_result(const Plan* plan, const Tensor* full, const Tensor* res,
                             int* nspatial) noexcept nogil:
    """A global result is (N, C), or keeps the spatial axes of ``full`` as size 1."""
    cdef int64_t keep[PYPOOL_MAX_NDIM]
    cdef int i
    cdef char a[200]
    cdef char b[200]
    cdef char c[200]
    cdef char d[200]
    for i in range(full.ndim):
        keep[i] = 1 if plan.nlead <= i < plan.nlead + plan.rank else full.shape[i]
    if expect_shape(res, plan.out_ndim, plan.out_shape, "") == PYPOOL_OK:
        nspatial[0] = 0
        return PYPOOL_OK
    if expect_shape(res, full.ndim, keep, "") == PYPOOL_OK:
        nspatial[0] = plan.rank
        return PYPOOL_OK
    return pypool_fail(PYPOOL_ERR_SHAPE, "%s has shape %s; expected %s or, keeping dims, %s "
                       "for %s of shape %s", res.name,
                       pypool_format_shape(a, sizeof(a), res.ndim, res.shape),
                       pypool_format_shape(b, sizeof(b), plan.out_ndim, plan.out_shape),
                       pypool_format_shape(c, sizeof(c), full.ndim, keep), full.name,
                       pypool_format_shape(d, sizeof(d), full.ndim, full.shape))


# ----------------------------------------------------------------------------- kernel calls

cdef int make_windows_c(Windows* w, const pypool_axis* ax, bint adaptive,
                        bint count_include_pad) noexcept nogil:
    """Window tables from resolved axes (the C twin of make_windows)."""
    cdef int64_t ins[3]
    cdef int64_t outs[3]
    cdef int i
    cdef pypool_status st
    w.block = NULL
    if adaptive:
        for i in range(3):
            ins[i] = ax[i].in_size
            outs[i] = ax[i].out_size
        st = adaptive_windows(w, ins, outs)
    else:
        st = sliding_windows(w, ax, count_include_pad)
    if st != PYPOOL_OK:
        free_windows(w)
        return pypool_fail(PYPOOL_ERR_NOMEM, "cannot allocate window tables")
    return PYPOOL_OK


cdef int max_kernel(int kd, const Operand* x, const Operand* y, const Operand* ind,
                    const Windows* w, int nthreads) noexcept nogil:
    """max_forward for kernel dtype kd; returns the number of failed scratch allocations."""
    cdef int64_t* ip = NULL
    cdef const Strided5* js = &y.v
    if ind != NULL:
        ip = <int64_t*>ind.data
        js = &ind.v
    if kd == PYPOOL_INT8:
        return max_forward(<const int8_t*>x.data, &x.v, <int8_t*>y.data, &y.v, ip, js, w, nthreads)
    if kd == PYPOOL_INT16:
        return max_forward(<const int16_t*>x.data, &x.v, <int16_t*>y.data, &y.v, ip, js, w, nthreads)
    if kd == PYPOOL_INT32:
        return max_forward(<const int32_t*>x.data, &x.v, <int32_t*>y.data, &y.v, ip, js, w, nthreads)
    if kd == PYPOOL_INT64:
        return max_forward(<const int64_t*>x.data, &x.v, <int64_t*>y.data, &y.v, ip, js, w, nthreads)
    if kd == PYPOOL_UINT8:
        return max_forward(<const uint8_t*>x.data, &x.v, <uint8_t*>y.data, &y.v, ip, js, w, nthreads)
    if kd == PYPOOL_UINT16:
        return max_forward(<const uint16_t*>x.data, &x.v, <uint16_t*>y.data, &y.v, ip, js, w,
                           nthreads)
    if kd == PYPOOL_UINT32:
        return max_forward(<const uint32_t*>x.data, &x.v, <uint32_t*>y.data, &y.v, ip, js, w,
                           nthreads)
    if kd == PYPOOL_UINT64:
        return max_forward(<const uint64_t*>x.data, &x.v, <uint64_t*>y.data, &y.v, ip, js, w,
                           nthreads)
    if kd == PYPOOL_FLOAT32:
        return max_forward(<const float*>x.data, &x.v, <float*>y.data, &y.v, ip, js, w, nthreads)
    return max_forward(<const double*>x.data, &x.v, <double*>y.data, &y.v, ip, js, w, nthreads)


cdef int reduce_kernel(int kd, const Operand* x, float_out_t* y, const Strided5* ys,
                       const Windows* w, int op, int64_t divisor_override, double p,
                       int nthreads) noexcept nogil:
    """reduce_forward for input kernel dtype kd into y; returns failed allocations."""
    if kd == PYPOOL_INT8:
        return reduce_forward(<const int8_t*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    if kd == PYPOOL_INT16:
        return reduce_forward(<const int16_t*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    if kd == PYPOOL_INT32:
        return reduce_forward(<const int32_t*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    if kd == PYPOOL_INT64:
        return reduce_forward(<const int64_t*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    if kd == PYPOOL_UINT8:
        return reduce_forward(<const uint8_t*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    if kd == PYPOOL_UINT16:
        return reduce_forward(<const uint16_t*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    if kd == PYPOOL_UINT32:
        return reduce_forward(<const uint32_t*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    if kd == PYPOOL_UINT64:
        return reduce_forward(<const uint64_t*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    if kd == PYPOOL_FLOAT32:
        return reduce_forward(<const float*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                              nthreads)
    return reduce_forward(<const double*>x.data, &x.v, y, ys, w, op, divisor_override, p,
                          nthreads)


cdef int gather_kernel(int kd, const Operand* g, const Operand* dx, const pypool_axis* ax,
                       bint adaptive, bint count_include_pad, int64_t divisor_override,
                       int nthreads) noexcept nogil:
    """The adjoint of an average (window tables, their inverse, the gather)."""
    cdef Windows w
    cdef Covers c
    cdef int64_t ins[3]
    cdef int i, failed
    cdef int st = make_windows_c(&w, ax, adaptive, count_include_pad)
    if st != PYPOOL_OK:
        return st
    for i in range(3):
        ins[i] = dx.v.n[i + 1]
    c.block = NULL
    st = build_covers(&c, &w, ins)
    if st != PYPOOL_OK:
        free_windows(&w)
        return pypool_fail(st, "cannot build the inverse window tables (%s)",
                           capi_status_message(st))
    if kd == PYPOOL_FLOAT32:
        failed = gather_backward(<const float*>g.data, &g.v, <float*>dx.data, &dx.v, &w, &c,
                                 True, divisor_override, nthreads)
    else:
        failed = gather_backward(<const double*>g.data, &g.v, <double*>dx.data, &dx.v, &w, &c,
                                 True, divisor_override, nthreads)
    free_covers(&c)
    free_windows(&w)
    if failed:
        return pypool_fail(PYPOOL_ERR_NOMEM, "cannot allocate kernel scratch buffers")
    return PYPOOL_OK


cdef int check_index_values(const Operand* ind, int64_t lo, int64_t hi, const char* name,
                            int nthreads) noexcept nogil:
    """Every index in [lo, hi) (count_bad_indices, as the Python layer), else
    PYPOOL_ERR_INDEX naming the first offender."""
    cdef int64_t bad, b, d, h, w, v, k
    cdef const int64_t* p = <const int64_t*>ind.data
    if ind.v.n[0] * ind.v.n[1] * ind.v.n[2] * ind.v.n[3] * ind.v.n[4] == 0:
        return PYPOOL_OK
    bad = count_bad_indices(p, &ind.v, lo, hi, nthreads)
    if bad == 0:
        return PYPOOL_OK
    for b in range(ind.v.n[0]):
        for d in range(ind.v.n[1]):
            for h in range(ind.v.n[2]):
                for w in range(ind.v.n[3]):
                    for v in range(ind.v.n[4]):
                        k = p[offset5(&ind.v, b, d, h, w, v)]
                        if k < lo or k >= hi:
                            return pypool_fail(PYPOOL_ERR_INDEX, "%s holds %lld value(s) outside "
                                               "[%lld, %lld) (e.g. %lld); each must index its "
                                               "plane's %lld positions", name, <long long>bad,
                                               <long long>lo, <long long>hi, <long long>k,
                                               <long long>hi)
    return PYPOOL_ERR_INDEX


# ----------------------------------------------------------------------------- operations

cdef enum:
    KIND_WINDOW = 0
    KIND_ADAPTIVE = 1
    KIND_GLOBAL = 2


cdef int max_family(int kind, const pypool_params* p, const pypool_tensor* x_,
                    const pypool_tensor* out_, const pypool_tensor* ind_) noexcept nogil:
    """max_pool, adaptive_max_pool and global_max_pool."""
    cdef Tensor x, out, ind
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef Groups gx, gy
    cdef Operand xo, yo, io
    cdef Windows w
    cdef int st, kd, out_nspatial, nthreads, failed
    cdef bint want = ind_ != NULL
    st = check_tensor(x_, "x", &x)
    if st == PYPOOL_OK:
        st = check_tensor(out_, "out", &out)
    if st == PYPOOL_OK and want:
        st = check_tensor(ind_, "indices", &ind)
    if st != PYPOOL_OK:
        return st
    if kind == KIND_WINDOW:
        st = window_plan(p, x.ndim, x.shape, "x", &plan)
    elif kind == KIND_ADAPTIVE:
        st = adaptive_plan(p, &x, &out, &plan)
    else:
        st = global_plan(p, &x, &plan)
    if st != PYPOOL_OK:
        return st
    out_nspatial = plan.rank
    if kind == KIND_GLOBAL:
        st = check_global_result(&plan, &x, &out, &out_nspatial)
    else:
        st = expect_shape(&out, plan.out_ndim, plan.out_shape, " (the pooled shape)")
    if st != PYPOOL_OK:
        return st
    if out.dtype != x.dtype:
        return pypool_fail(PYPOOL_ERR_DTYPE, "out has dtype %s; expected x's dtype %s",
                           dtype_name(out.dtype), dtype_name(x.dtype))
    if want:
        if ind.dtype != PYPOOL_INT64:
            return pypool_fail(PYPOOL_ERR_DTYPE, "indices has dtype %s; expected int64",
                               dtype_name(ind.dtype))
        st = expect_shape(&ind, out.ndim, out.shape, " (out's shape)")
        if st != PYPOOL_OK:
            return st
    st = check_outputs(&out, &x, NULL, &ind if want else NULL)
    if st != PYPOOL_OK or out.size == 0:
        return st
    nthreads = thread_budget(p.num_threads, plan.work)
    kd = kernel_input(x.dtype)
    if x.dtype == PYPOOL_BOOL:      # the same bytes, read as uint8
        x.dtype = PYPOOL_UINT8
        out.dtype = PYPOOL_UINT8
    make_groups(&gx, plan.nlead, plan.rank, kind == KIND_GLOBAL, plan.channels_last, x.ndim)
    make_groups(&gy, plan.nlead, out_nspatial, kind == KIND_GLOBAL, plan.channels_last, out.ndim)
    no_operand(&xo)
    no_operand(&yo)
    no_operand(&io)
    st = prepare_input(&x, &gx, kd, &xo)
    if st == PYPOOL_OK:
        st = prepare_output(&out, &gy, kd, &yo)
    if st == PYPOOL_OK and want:
        st = prepare_output(&ind, &gy, PYPOOL_INT64, &io)
    if st == PYPOOL_OK:
        st = make_windows_c(&w, plan.ax, kind == KIND_ADAPTIVE, False)
    if st == PYPOOL_OK:
        failed = max_kernel(kd, &xo, &yo, &io if want else NULL, &w, nthreads)
        free_windows(&w)
        if failed:
            st = pypool_fail(PYPOOL_ERR_NOMEM, "cannot allocate kernel scratch buffers")
        else:
            finish_output(&out, kd, &yo)
            if want:
                finish_output(&ind, PYPOOL_INT64, &io)
    release(&xo)
    release(&yo)
    release(&io)
    return st


cdef int reduce_family(int kind, int op, const pypool_params* p, const pypool_tensor* x_,
                       const pypool_tensor* out_) noexcept nogil:
    """avg_pool, lp_pool, adaptive_avg_pool and global_avg_pool."""
    cdef Tensor x, out
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef Groups gx, gy
    cdef Operand xo, yo
    cdef Windows w
    cdef int st, kd, kd_out, out_nspatial, nthreads, failed
    cdef int64_t divisor = 0
    cdef double norm = 1.0
    cdef bint count_include_pad = False
    st = check_tensor(x_, "x", &x)
    if st == PYPOOL_OK:
        st = check_tensor(out_, "out", &out)
    if st != PYPOOL_OK:
        return st
    if kind == KIND_WINDOW:
        st = window_plan(p, x.ndim, x.shape, "x", &plan)
    elif kind == KIND_ADAPTIVE:
        st = adaptive_plan(p, &x, &out, &plan)
    else:
        st = global_plan(p, &x, &plan)
    if st != PYPOOL_OK:
        return st
    if kind == KIND_WINDOW and op == REDUCE_AVG:
        if p.divisor_override < 0:
            return pypool_fail(PYPOOL_ERR_ARGUMENT, "params.divisor_override is %lld; expected 0 "
                               "(none) or a divisor >= 1", <long long>p.divisor_override)
        divisor = p.divisor_override
        count_include_pad = p.count_include_pad != 0
    if op == REDUCE_LP:
        norm = p.norm_type
        if not norm > 0:   # also refuses NaN
            return pypool_fail(PYPOOL_ERR_ARGUMENT, "params.norm_type is %g; expected p > 0 "
                               "(or INFINITY)", norm)
    out_nspatial = plan.rank
    if kind == KIND_GLOBAL:
        st = check_global_result(&plan, &x, &out, &out_nspatial)
    else:
        st = expect_shape(&out, plan.out_ndim, plan.out_shape, " (the pooled shape)")
    if st != PYPOOL_OK:
        return st
    if not is_float(out.dtype):
        return pypool_fail(PYPOOL_ERR_DTYPE, "out has dtype %s; averages and Lp norms are "
                           "float16, float32 or float64", dtype_name(out.dtype))
    st = check_outputs(&out, &x, NULL, NULL)
    if st != PYPOOL_OK or out.size == 0:
        return st
    nthreads = thread_budget(p.num_threads, plan.work)
    kd = kernel_input(x.dtype)
    if x.dtype == PYPOOL_BOOL:
        x.dtype = PYPOOL_UINT8
    kd_out = kernel_float(out.dtype)
    make_groups(&gx, plan.nlead, plan.rank, kind == KIND_GLOBAL, plan.channels_last, x.ndim)
    make_groups(&gy, plan.nlead, out_nspatial, kind == KIND_GLOBAL, plan.channels_last, out.ndim)
    no_operand(&xo)
    no_operand(&yo)
    st = prepare_input(&x, &gx, kd, &xo)
    if st == PYPOOL_OK:
        st = prepare_output(&out, &gy, kd_out, &yo)
    if st == PYPOOL_OK:
        st = make_windows_c(&w, plan.ax, kind == KIND_ADAPTIVE, count_include_pad)
    if st == PYPOOL_OK:
        sliding_if_equal_cells(&w, &xo.v)
        if kd_out == PYPOOL_FLOAT32:
            failed = reduce_kernel(kd, &xo, <float*>yo.data, &yo.v, &w, op, divisor, norm,
                                   nthreads)
        else:
            failed = reduce_kernel(kd, &xo, <double*>yo.data, &yo.v, &w, op, divisor, norm,
                                   nthreads)
        free_windows(&w)
        if failed:
            st = pypool_fail(PYPOOL_ERR_NOMEM, "cannot allocate kernel scratch buffers")
        else:
            finish_output(&out, kd_out, &yo)
    release(&xo)
    release(&yo)
    return st


cdef int capi_max_unpool(const pypool_params* p, const pypool_tensor* x_,
                         const pypool_tensor* ind_, const pypool_tensor* out_) noexcept nogil:
    cdef Tensor x, ind, out
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef Groups gx, gy
    cdef Operand xo, io, yo
    cdef int st, i, nthreads, udt
    cdef int64_t plane = 1
    cdef char a[200]
    cdef char b[200]
    pypool_clear_detail()
    st = check_tensor(x_, "x", &x)
    if st == PYPOOL_OK:
        st = check_tensor(ind_, "indices", &ind)
    if st == PYPOOL_OK:
        st = check_tensor(out_, "out", &out)
    if st == PYPOOL_OK:
        st = check_params(p)
    if st == PYPOOL_OK:
        st = check_rank(p, 3, "max_unpool")
    if st == PYPOOL_OK:
        st = split_axes(p, x.ndim, x.shape, "x", &plan)
    if st != PYPOOL_OK:
        return st
    if out.ndim != x.ndim:
        return pypool_fail(PYPOOL_ERR_SHAPE, "out has %d dims; expected %d like x (the output "
                           "size is read from its spatial axes)", out.ndim, x.ndim)
    for i in range(x.ndim):
        if plan.nlead <= i < plan.nlead + plan.rank:
            if out.shape[i] < 1:
                return pypool_fail(PYPOOL_ERR_EMPTY_OUTPUT, "out has size %lld on spatial axis "
                                   "%d; max_unpool output sizes must be >= 1",
                                   <long long>out.shape[i], i - plan.nlead)
            plane = saturating_mul(plane, out.shape[i])
        elif out.shape[i] != x.shape[i]:
            return pypool_fail(PYPOOL_ERR_SHAPE, "out has shape %s; it must match x's shape %s "
                               "outside the spatial axes",
                               pypool_format_shape(a, sizeof(a), out.ndim, out.shape),
                               pypool_format_shape(b, sizeof(b), x.ndim, x.shape))
    if ind.dtype != PYPOOL_INT64:
        return pypool_fail(PYPOOL_ERR_DTYPE, "indices has dtype %s; expected int64",
                           dtype_name(ind.dtype))
    st = expect_shape(&ind, x.ndim, x.shape, " (x's shape)")
    if st != PYPOOL_OK:
        return st
    if out.dtype != x.dtype:
        return pypool_fail(PYPOOL_ERR_DTYPE, "out has dtype %s; expected x's dtype %s",
                           dtype_name(out.dtype), dtype_name(x.dtype))
    st = check_outputs(&out, &x, &ind, NULL)
    if st != PYPOOL_OK:
        return st
    nthreads = thread_budget(p.num_threads, x.size + out.size)
    make_groups(&gx, plan.nlead, plan.rank, True, plan.channels_last, x.ndim)
    make_groups(&gy, plan.nlead, plan.rank, True, plan.channels_last, out.ndim)
    no_operand(&xo)
    no_operand(&io)
    no_operand(&yo)
    # Indices are checked before anything is written.
    st = prepare_input(&ind, &gx, PYPOOL_INT64, &io)
    if st == PYPOOL_OK:
        st = check_index_values(&io, 0, plane, "indices", nthreads)
    if st == PYPOOL_OK and out.size > 0:
        udt = unsigned_of_size(itemsize_of(x.dtype))   # values move bit for bit
        x.dtype = udt
        out.dtype = udt
        st = prepare_input(&x, &gx, udt, &xo)
        if st == PYPOOL_OK:
            st = prepare_output(&out, &gy, udt, &yo)
        if st == PYPOOL_OK:
            if udt == PYPOOL_UINT8:
                unpool_planes(<const uint8_t*>xo.data, &xo.v, <const int64_t*>io.data, &io.v,
                              <uint8_t*>yo.data, &yo.v, nthreads)
            elif udt == PYPOOL_UINT16:
                unpool_planes(<const uint16_t*>xo.data, &xo.v, <const int64_t*>io.data, &io.v,
                              <uint16_t*>yo.data, &yo.v, nthreads)
            elif udt == PYPOOL_UINT32:
                unpool_planes(<const uint32_t*>xo.data, &xo.v, <const int64_t*>io.data, &io.v,
                              <uint32_t*>yo.data, &yo.v, nthreads)
            else:
                unpool_planes(<const uint64_t*>xo.data, &xo.v, <const int64_t*>io.data, &io.v,
                              <uint64_t*>yo.data, &yo.v, nthreads)
            finish_output(&out, udt, &yo)
    release(&xo)
    release(&io)
    release(&yo)
    return st


cdef int capi_max_pool_backward(const pypool_params* p, const pypool_tensor* g_,
                                const pypool_tensor* ind_, const pypool_tensor* dx_) noexcept nogil:
    cdef Tensor g, ind, dx
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef Groups gg, gd
    cdef Operand go, io, dxo
    cdef int64_t expected[PYPOOL_MAX_NDIM]
    cdef int st, i, n, g_nspatial, kd, nthreads, failed, most
    cdef int64_t plane = 1
    cdef char a[200]
    pypool_clear_detail()
    st = check_tensor(g_, "grad_output", &g)
    if st == PYPOOL_OK:
        st = check_tensor(ind_, "indices", &ind)
    if st == PYPOOL_OK:
        st = check_tensor(dx_, "grad_input", &dx)
    if st == PYPOOL_OK:
        st = check_params(p)
    if st != PYPOOL_OK:
        return st
    most = dx.ndim - (1 if p.layout == PYPOOL_CHANNELS_LAST else 0)
    if most < 1 or p.rank < 1 or p.rank > most:
        return pypool_fail(PYPOOL_ERR_RANK, "params.rank is %d; max_pool_backward takes 1 to %d "
                           "spatial axes for grad_input of shape %s", <int>p.rank, most,
                           pypool_format_shape(a, sizeof(a), dx.ndim, dx.shape))
    split_axes(p, dx.ndim, dx.shape, "grad_input", &plan)
    # grad_output: (*lead, *out_spatial[, C]), or (*lead[, C]) after a global pool
    # without keepdims.
    n = 0
    for i in range(plan.nlead):
        expected[n] = dx.shape[i]
        n += 1
    if g.ndim == dx.ndim:
        g_nspatial = plan.rank
        for i in range(plan.rank):
            expected[n] = g.shape[plan.nlead + i]
            n += 1
    else:
        g_nspatial = 0
    if plan.channels_last:
        expected[n] = dx.shape[dx.ndim - 1]
        n += 1
    st = expect_shape(&g, n, expected, " (the gradient of a pool of grad_input)")
    if st != PYPOOL_OK:
        return st
    if ind.dtype != PYPOOL_INT64:
        return pypool_fail(PYPOOL_ERR_DTYPE, "indices has dtype %s; expected int64",
                           dtype_name(ind.dtype))
    st = expect_shape(&ind, g.ndim, g.shape, " (grad_output's shape)")
    if st != PYPOOL_OK:
        return st
    if dx.dtype != float_result(g.dtype):
        return pypool_fail(PYPOOL_ERR_DTYPE, "grad_input has dtype %s; expected %s for a %s "
                           "grad_output", dtype_name(dx.dtype), dtype_name(float_result(g.dtype)),
                           dtype_name(g.dtype))
    st = check_outputs(&dx, &g, &ind, NULL)
    if st != PYPOOL_OK:
        return st
    for i in range(plan.rank):
        plane = saturating_mul(plane, dx.shape[plan.nlead + i])
    nthreads = thread_budget(p.num_threads, g.size + dx.size)
    make_groups(&gg, plan.nlead, g_nspatial, True, plan.channels_last, g.ndim)
    make_groups(&gd, plan.nlead, plan.rank, True, plan.channels_last, dx.ndim)
    no_operand(&go)
    no_operand(&io)
    no_operand(&dxo)
    st = prepare_input(&ind, &gg, PYPOOL_INT64, &io)
    if st == PYPOOL_OK:
        st = check_index_values(&io, -1, plane, "indices", nthreads)
    if st == PYPOOL_OK and dx.size > 0:
        kd = kernel_float(dx.dtype)
        st = prepare_input(&g, &gg, kd, &go)
        if st == PYPOOL_OK:
            st = prepare_output(&dx, &gd, kd, &dxo)
        if st == PYPOOL_OK:
            if kd == PYPOOL_FLOAT32:
                failed = scatter_planes(<const float*>go.data, &go.v, <const int64_t*>io.data,
                                        &io.v, <float*>dxo.data, &dxo.v, nthreads)
            else:
                failed = scatter_planes(<const double*>go.data, &go.v, <const int64_t*>io.data,
                                        &io.v, <double*>dxo.data, &dxo.v, nthreads)
            if failed:
                st = pypool_fail(PYPOOL_ERR_NOMEM, "cannot allocate the max-backward accumulator")
            else:
                finish_output(&dx, kd, &dxo)
    release(&go)
    release(&io)
    release(&dxo)
    return st


cdef int gather_family(int kind, const pypool_params* p, const pypool_tensor* g_,
                       const pypool_tensor* dx_) noexcept nogil:
    """avg_pool_backward, adaptive_avg_pool_backward and global_avg_pool_backward."""
    cdef Tensor g, dx
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef Groups gg, gd
    cdef Operand go, dxo
    cdef int st, kd, g_nspatial, nthreads
    cdef int64_t divisor = 0
    cdef bint count_include_pad = False
    cdef char a[200]
    pypool_clear_detail()
    st = check_tensor(g_, "grad_output", &g)
    if st == PYPOOL_OK:
        st = check_tensor(dx_, "grad_input", &dx)
    if st != PYPOOL_OK:
        return st
    if kind == KIND_WINDOW:
        st = window_plan(p, dx.ndim, dx.shape, "grad_input", &plan)
        if st == PYPOOL_OK and p.divisor_override < 0:
            st = pypool_fail(PYPOOL_ERR_ARGUMENT, "params.divisor_override is %lld; expected 0 "
                             "(none) or a divisor >= 1", <long long>p.divisor_override)
        if st == PYPOOL_OK:
            divisor = p.divisor_override
            count_include_pad = p.count_include_pad != 0
            st = expect_shape(&g, plan.out_ndim, plan.out_shape,
                              " (the pooled shape of grad_input)")
        g_nspatial = plan.rank
    elif kind == KIND_ADAPTIVE:
        st = check_params(p)
        if st == PYPOOL_OK and g.ndim != dx.ndim:
            st = pypool_fail(PYPOOL_ERR_SHAPE, "grad_output has shape %s; expected %d dims like "
                             "grad_input", pypool_format_shape(a, sizeof(a), g.ndim, g.shape),
                             dx.ndim)
        if st == PYPOOL_OK:
            st = adaptive_plan(p, &dx, &g, &plan)
        g_nspatial = plan.rank
    else:
        st = global_plan(p, &dx, &plan)
        if st == PYPOOL_OK:
            st = check_global_result(&plan, &dx, &g, &g_nspatial)
    if st != PYPOOL_OK:
        return st
    if dx.dtype != float_result(g.dtype):
        return pypool_fail(PYPOOL_ERR_DTYPE, "grad_input has dtype %s; expected %s for a %s "
                           "grad_output", dtype_name(dx.dtype), dtype_name(float_result(g.dtype)),
                           dtype_name(g.dtype))
    st = check_outputs(&dx, &g, NULL, NULL)
    if st != PYPOOL_OK or dx.size == 0:
        return st
    if kind == KIND_WINDOW:
        nthreads = thread_budget(p.num_threads, saturating_mul(plan.taps, dx.size))
    elif kind == KIND_ADAPTIVE:
        nthreads = thread_budget(p.num_threads, g.size + dx.size)
    else:
        nthreads = thread_budget(p.num_threads, dx.size)
    kd = kernel_float(dx.dtype)
    make_groups(&gg, plan.nlead, g_nspatial, kind == KIND_GLOBAL, plan.channels_last, g.ndim)
    make_groups(&gd, plan.nlead, plan.rank, kind == KIND_GLOBAL, plan.channels_last, dx.ndim)
    no_operand(&go)
    no_operand(&dxo)
    st = prepare_input(&g, &gg, kd, &go)
    if st == PYPOOL_OK:
        st = prepare_output(&dx, &gd, kd, &dxo)
    if st == PYPOOL_OK:
        st = gather_kernel(kd, &go, &dxo, plan.ax, kind == KIND_ADAPTIVE, count_include_pad,
                           divisor, nthreads)
    if st == PYPOOL_OK:
        finish_output(&dx, kd, &dxo)
    release(&go)
    release(&dxo)
    return st


cdef int capi_lp_pool_backward(const pypool_params* p, const pypool_tensor* g_,
                               const pypool_tensor* x_, const pypool_tensor* dx_) noexcept nogil:
    cdef Tensor g, x, dx
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef Groups gg, gx
    cdef Operand go, xo, dxo
    cdef int st, nthreads
    pypool_clear_detail()
    st = check_tensor(g_, "grad_output", &g)
    if st == PYPOOL_OK:
        st = check_tensor(x_, "x", &x)
    if st == PYPOOL_OK:
        st = check_tensor(dx_, "grad_input", &dx)
    if st == PYPOOL_OK:
        st = window_plan(p, x.ndim, x.shape, "x", &plan)
    if st != PYPOOL_OK:
        return st
    if not p.norm_type > 0:
        return pypool_fail(PYPOOL_ERR_ARGUMENT, "params.norm_type is %g; expected p > 0 (or "
                           "INFINITY)", p.norm_type)
    st = expect_shape(&g, plan.out_ndim, plan.out_shape, " (the pooled shape of x)")
    if st == PYPOOL_OK:
        st = expect_shape(&dx, x.ndim, x.shape, " (x's shape)")
    if st != PYPOOL_OK:
        return st
    if dx.dtype != float_result(x.dtype):
        return pypool_fail(PYPOOL_ERR_DTYPE, "grad_input has dtype %s; expected %s (x's floating "
                           "dtype, float64 for integer x)", dtype_name(dx.dtype),
                           dtype_name(float_result(x.dtype)))
    st = check_outputs(&dx, &g, &x, NULL)
    if st != PYPOOL_OK or dx.size == 0:
        return st
    nthreads = thread_budget(p.num_threads, saturating_mul(plan.taps, x.size))
    make_groups(&gg, plan.nlead, plan.rank, False, plan.channels_last, g.ndim)
    make_groups(&gx, plan.nlead, plan.rank, False, plan.channels_last, x.ndim)
    no_operand(&go)
    no_operand(&xo)
    no_operand(&dxo)
    # Everything in float64, as the Python layer (astype) does.
    st = prepare_input(&g, &gg, PYPOOL_FLOAT64, &go)
    if st == PYPOOL_OK:
        st = prepare_input(&x, &gx, PYPOOL_FLOAT64, &xo)
    if st == PYPOOL_OK:
        st = prepare_output(&dx, &gx, PYPOOL_FLOAT64, &dxo)
    if st == PYPOOL_OK:
        st = lp_backward_core(<const double*>go.data, &go.v, <const double*>xo.data, &xo.v,
                              <double*>dxo.data, &dxo.v, plan.ax, p.norm_type, nthreads)
        if st != PYPOOL_OK:
            st = pypool_fail(st, "lp_pool_backward: %s", capi_status_message(st))
        else:
            finish_output(&dx, PYPOOL_FLOAT64, &dxo)
    release(&go)
    release(&xo)
    release(&dxo)
    return st


# ----------------------------------------------------------------------------- table entries

cdef const char* capi_status_message(int status) noexcept nogil:
    if status == PYPOOL_OK:
        return "success"
    if status == PYPOOL_ERR_KERNEL:
        return "kernel size below 1"
    if status == PYPOOL_ERR_STRIDE:
        return "stride below 1"
    if status == PYPOOL_ERR_DILATION:
        return "dilation below 1"
    if status == PYPOOL_ERR_PAD_NEGATIVE:
        return "negative padding"
    if status == PYPOOL_ERR_PAD_TOO_LARGE:
        return "a pad is not smaller than the effective kernel extent (kernel_size-1)*dilation+1"
    if status == PYPOOL_ERR_EMPTY_OUTPUT:
        return "an output size would be below 1"
    if status == PYPOOL_ERR_OVERFLOW:
        return "a size or offset does not fit in 64-bit arithmetic"
    if status == PYPOOL_ERR_SHAPE:
        return "a shape is negative or not the one the operation expects"
    if status == PYPOOL_ERR_NOMEM:
        return "out of memory for scratch buffers"
    if status == PYPOOL_ERR_INDEX:
        return "an index lies outside its plane"
    if status == PYPOOL_ERR_NULL:
        return "a required pointer is NULL"
    if status == PYPOOL_ERR_DTYPE:
        return "a dtype the operation does not take"
    if status == PYPOOL_ERR_RANK:
        return "spatial rank out of range"
    if status == PYPOOL_ERR_LAYOUT:
        return "unknown layout (expected PYPOOL_CHANNELS_FIRST or PYPOOL_CHANNELS_LAST)"
    if status == PYPOOL_ERR_ARGUMENT:
        return "a parameter is out of range"
    if status == PYPOOL_ERR_OVERLAP:
        return "an output overlaps an input, another output or itself"
    return "unknown pypool status code"


cdef const char* capi_error_detail() noexcept nogil:
    return pypool_detail()


cdef int capi_resolve_axis(pypool_axis* axis, int32_t pad_mode, int32_t ceil_mode) noexcept nogil:
    cdef int st
    pypool_clear_detail()
    if axis == NULL:
        return pypool_fail(PYPOOL_ERR_NULL, "axis is NULL")
    if pad_mode < PYPOOL_PAD_EXPLICIT or pad_mode > PYPOOL_PAD_SAME_LOWER:
        return pypool_fail(PYPOOL_ERR_ARGUMENT, "pad_mode is %d; expected PYPOOL_PAD_EXPLICIT, "
                           "PYPOOL_PAD_SAME_UPPER or PYPOOL_PAD_SAME_LOWER", <int>pad_mode)
    st = resolve_axis(axis, <pypool_pad_mode>pad_mode, ceil_mode != 0)
    if st == PYPOOL_OK:
        return PYPOOL_OK
    return pypool_fail(st, "axis (in_size %lld, kernel %lld, stride %lld, dilation %lld, pads "
                       "(%lld, %lld)): %s", <long long>axis.in_size, <long long>axis.kernel,
                       <long long>axis.stride, <long long>axis.dilation,
                       <long long>axis.pad_begin, <long long>axis.pad_end,
                       capi_status_message(st))


cdef int capi_pooled_shape(const pypool_params* p, int32_t ndim, const int64_t* input_shape,
                           int64_t* output_shape) noexcept nogil:
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef int i
    cdef int st
    pypool_clear_detail()
    st = check_shape_array(ndim, input_shape, "input_shape")
    if st == PYPOOL_OK:
        st = window_plan(p, ndim, input_shape, "input_shape", &plan)
    if st != PYPOOL_OK:
        return st
    if output_shape == NULL and ndim > 0:
        return pypool_fail(PYPOOL_ERR_NULL, "output_shape is NULL")
    for i in range(ndim):
        output_shape[i] = plan.out_shape[i]
    return PYPOOL_OK


cdef int capi_resolve_padding(const pypool_params* p, int32_t ndim, const int64_t* input_shape,
                              int64_t* pad_begin, int64_t* pad_end) noexcept nogil:
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef int i
    cdef int st
    pypool_clear_detail()
    st = check_shape_array(ndim, input_shape, "input_shape")
    if st == PYPOOL_OK:
        st = window_plan(p, ndim, input_shape, "input_shape", &plan)
    if st != PYPOOL_OK:
        return st
    if pad_begin == NULL or pad_end == NULL:
        return pypool_fail(PYPOOL_ERR_NULL, "pad_begin or pad_end is NULL")
    for i in range(plan.rank):
        pad_begin[i] = plan.ax[3 - plan.rank + i].pad_begin
        pad_end[i] = plan.ax[3 - plan.rank + i].pad_end
    return PYPOOL_OK


cdef int capi_unpooled_shape(const pypool_params* p, int32_t ndim, const int64_t* input_shape,
                             int64_t* output_shape) noexcept nogil:
    cdef Plan plan
    memset(&plan, 0, sizeof(plan))
    cdef int i, st
    cdef int64_t n, k, s
    pypool_clear_detail()
    st = check_shape_array(ndim, input_shape, "input_shape")
    if st == PYPOOL_OK:
        st = check_params(p)
    if st == PYPOOL_OK:
        st = check_rank(p, 3, "max_unpool")
    if st == PYPOOL_OK and p.pad_mode != PYPOOL_PAD_EXPLICIT:
        st = pypool_fail(PYPOOL_ERR_ARGUMENT, "params.pad_mode is %d; max_unpool takes explicit "
                         "pads (PYPOOL_PAD_EXPLICIT)", <int>p.pad_mode)
    if st == PYPOOL_OK:
        st = split_axes(p, ndim, input_shape, "input_shape", &plan)
    if st != PYPOOL_OK:
        return st
    if output_shape == NULL and ndim > 0:
        return pypool_fail(PYPOOL_ERR_NULL, "output_shape is NULL")
    for i in range(plan.rank):
        k = p.kernel_size[i]
        s = p.stride[i] if p.stride[i] != 0 else k
        n = 0
        st = unpool_axis_size(input_shape[plan.nlead + i], k, s, p.pad_begin[i], p.pad_end[i], &n)
        if st == PYPOOL_ERR_EMPTY_OUTPUT:
            return pypool_fail(st, "max_unpool output size on spatial axis %d would be %lld "
                               "(input size %lld, stride %lld, padding (%lld, %lld), kernel_size "
                               "%lld); it must be at least 1", i, <long long>n,
                               <long long>input_shape[plan.nlead + i], <long long>s,
                               <long long>p.pad_begin[i], <long long>p.pad_end[i], <long long>k)
        if st == PYPOOL_ERR_KERNEL:
            return pypool_fail(st, "params.kernel_size[%d] is %lld; it must be >= 1", i,
                               <long long>k)
        if st == PYPOOL_ERR_STRIDE:
            return pypool_fail(st, "params.stride[%d] is %lld; it must be >= 1 (or 0 for "
                               "kernel_size)", i, <long long>s)
        if st == PYPOOL_ERR_PAD_NEGATIVE:
            return pypool_fail(st, "padding (%lld, %lld) on spatial axis %d is negative",
                               <long long>p.pad_begin[i], <long long>p.pad_end[i], i)
        if st != PYPOOL_OK:
            return pypool_fail(st, "max_unpool output size on spatial axis %d overflows 64-bit "
                               "arithmetic", i)
        plan.out_shape[plan.nlead + i] = n
    for i in range(ndim):
        output_shape[i] = (plan.out_shape[i] if plan.nlead <= i < plan.nlead + plan.rank
                           else input_shape[i])
    return PYPOOL_OK


cdef int capi_max_pool(const pypool_params* p, const pypool_tensor* x, const pypool_tensor* out,
                       const pypool_tensor* indices) noexcept nogil:
    pypool_clear_detail()
    return max_family(KIND_WINDOW, p, x, out, indices)


cdef int capi_adaptive_max_pool(const pypool_params* p, const pypool_tensor* x,
                                const pypool_tensor* out,
                                const pypool_tensor* indices) noexcept nogil:
    pypool_clear_detail()
    return max_family(KIND_ADAPTIVE, p, x, out, indices)


cdef int capi_global_max_pool(const pypool_params* p, const pypool_tensor* x,
                              const pypool_tensor* out,
                              const pypool_tensor* indices) noexcept nogil:
    pypool_clear_detail()
    return max_family(KIND_GLOBAL, p, x, out, indices)


cdef int capi_avg_pool(const pypool_params* p, const pypool_tensor* x,
                       const pypool_tensor* out) noexcept nogil:
    pypool_clear_detail()
    return reduce_family(KIND_WINDOW, REDUCE_AVG, p, x, out)


cdef int capi_lp_pool(const pypool_params* p, const pypool_tensor* x,
                      const pypool_tensor* out) noexcept nogil:
    pypool_clear_detail()
    return reduce_family(KIND_WINDOW, REDUCE_LP, p, x, out)


cdef int capi_adaptive_avg_pool(const pypool_params* p, const pypool_tensor* x,
                                const pypool_tensor* out) noexcept nogil:
    pypool_clear_detail()
    return reduce_family(KIND_ADAPTIVE, REDUCE_AVG, p, x, out)


cdef int capi_global_avg_pool(const pypool_params* p, const pypool_tensor* x,
                              const pypool_tensor* out) noexcept nogil:
    pypool_clear_detail()
    return reduce_family(KIND_GLOBAL, REDUCE_AVG, p, x, out)


cdef int capi_avg_pool_backward(const pypool_params* p, const pypool_tensor* g,
                                const pypool_tensor* dx) noexcept nogil:
    return gather_family(KIND_WINDOW, p, g, dx)


cdef int capi_adaptive_avg_pool_backward(const pypool_params* p, const pypool_tensor* g,
                                         const pypool_tensor* dx) noexcept nogil:
    return gather_family(KIND_ADAPTIVE, p, g, dx)


cdef int capi_global_avg_pool_backward(const pypool_params* p, const pypool_tensor* g,
                                       const pypool_tensor* dx) noexcept nogil:
    return gather_family(KIND_GLOBAL, p, g, dx)


# The table this module exports. Filled once at import; slots are appended,
# never reordered (see PYPOOL_API_LEVEL in the header).
cdef pypool_api CAPI_TABLE


cdef void fill_capi_table() noexcept:
    CAPI_TABLE.abi_version = PYPOOL_ABI_VERSION
    CAPI_TABLE.api_level = PYPOOL_API_LEVEL
    CAPI_TABLE.status_message = capi_status_message
    CAPI_TABLE.error_detail = capi_error_detail
    CAPI_TABLE.resolve_axis = capi_resolve_axis
    CAPI_TABLE.pooled_shape = capi_pooled_shape
    CAPI_TABLE.resolve_padding = capi_resolve_padding
    CAPI_TABLE.unpooled_shape = capi_unpooled_shape
    CAPI_TABLE.max_pool = capi_max_pool
    CAPI_TABLE.avg_pool = capi_avg_pool
    CAPI_TABLE.lp_pool = capi_lp_pool
    CAPI_TABLE.adaptive_max_pool = capi_adaptive_max_pool
    CAPI_TABLE.adaptive_avg_pool = capi_adaptive_avg_pool
    CAPI_TABLE.global_max_pool = capi_global_max_pool
    CAPI_TABLE.global_avg_pool = capi_global_avg_pool
    CAPI_TABLE.max_unpool = capi_max_unpool
    CAPI_TABLE.max_pool_backward = capi_max_pool_backward
    CAPI_TABLE.avg_pool_backward = capi_avg_pool_backward
    CAPI_TABLE.lp_pool_backward = capi_lp_pool_backward
    CAPI_TABLE.adaptive_avg_pool_backward = capi_adaptive_avg_pool_backward
    CAPI_TABLE.global_avg_pool_backward = capi_global_avg_pool_backward


fill_capi_table()
pypool_watch_fork()

# The capsule C consumers fetch (pypool._native re-exports the loaded build's).
_C_API = PyCapsule_New(<void*>&CAPI_TABLE, PYPOOL_CAPI_CAPSULE, NULL)


def status_message(int status):
    """The C API's message for a status code."""
    return capi_status_message(status).decode()
