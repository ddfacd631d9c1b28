"""Argument checking and normalisation shared by every public function.

Everything a kernel needs is decided here, once per call: the spatial rank,
per-axis window parameters, resolved pads and output sizes (through the
compiled ``axis_geometry``, the same code the C API uses), dtypes, the 5-D
view handed to the kernel and the thread count. Errors name the argument,
the value given and what was expected.
"""

import math
import operator

import numpy as np

from . import _native

LAYOUTS = ("channels_first", "channels_last")
PAD_MODES = {"same": 1, "same_upper": 1, "same_lower": 2}

# Status codes of pypool.h (kept in step with include/pypool/pypool.h).
_OK, _ERR_PAD_TOO_LARGE, _ERR_EMPTY, _ERR_OVERFLOW, _ERR_SHAPE = 0, -5, -6, -7, -8

# Largest size or window parameter accepted (sums of two stay in int64).
SIZE_LIMIT = 2**62

_SUPPORTED = "bool, int8..int64, uint8..uint64, float16, float32 or float64"


def is_int(value):
    """True for Python/NumPy integers, False for bools (a bool is not a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_flag(name, value):
    """A boolean flag: Python bool or NumPy bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def check_layout(layout):
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout must be 'channels_first' or 'channels_last', got {layout!r}")
    return layout == "channels_last"


def as_sequence(value):
    """A list/tuple/1-D integer array as a tuple, else None."""
    if isinstance(value, (tuple, list)):
        return tuple(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return tuple(value.tolist())
    return None


def check_size(name, value, minimum):
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value >= SIZE_LIMIT:
        raise ValueError(f"{name} must be < 2**62, got {value}")
    return value


def rank_sequence(name, value, what):
    """The sequence whose length sets the spatial rank (1 to 3) of a rank-generic call."""
    seq = as_sequence(value)
    if seq is None:
        raise TypeError(
            f"{name} must be a tuple of 1 to 3 {what} (its length sets the spatial rank), "
            f"got {value!r}; the *1d/*2d/*3d functions accept a plain int")
    if not 1 <= len(seq) <= 3:
        raise ValueError(f"{name} must have 1 to 3 entries, got {len(seq)}: {value!r}")
    return seq


def rank_from_kernel(kernel_size, rank):
    """Spatial rank: fixed by an alias (rank) or by len(kernel_size)."""
    return rank if rank is not None else len(rank_sequence("kernel_size", kernel_size, "ints"))


def per_axis(name, value, rank, minimum, default=None):
    """An int broadcast to every axis, or a sequence of ``rank`` ints."""
    if value is None:
        if default is None:
            raise TypeError(f"{name} must be an int or a tuple of {rank} ints, got None")
        return default
    seq = as_sequence(value)
    if seq is None:
        return (check_size(name, value, minimum),) * rank
    if len(seq) != rank:
        raise ValueError(f"{name} must have {rank} entries (one per spatial axis), got {len(seq)}: {value!r}")
    return tuple(check_size(f"{name}[{i}]", v, minimum) for i, v in enumerate(seq))


def parse_padding(padding, rank):
    """Returns (mode, ((begin, end), ...)); mode 0 = explicit, 1 = same (upper), 2 = same_lower."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, ((0, 0),) * rank
        if padding in PAD_MODES:
            return PAD_MODES[padding], ((0, 0),) * rank
        raise ValueError(
            f"padding must be an int, a tuple, 'valid', 'same' or 'same_lower', got {padding!r}")
    seq = as_sequence(padding)
    if seq is None:
        if not is_int(padding):
            raise TypeError(f"padding must be an int, a tuple of ints or (begin, end) pairs, or a string, "
                            f"got {padding!r}")
        p = check_size("padding", padding, 0)
        return 0, ((p, p),) * rank
    if len(seq) != rank:
        raise ValueError(f"padding must have {rank} entries (one per spatial axis), got {len(seq)}: {padding!r}")
    pads = []
    for i, item in enumerate(seq):
        pair = as_sequence(item)
        if pair is None:
            p = check_size(f"padding[{i}]", item, 0)
            pads.append((p, p))
        elif len(pair) == 2:
            pads.append((check_size(f"padding[{i}][0]", pair[0], 0),
                         check_size(f"padding[{i}][1]", pair[1], 0)))
        else:
            raise ValueError(f"padding[{i}] must be an int or a (begin, end) pair, got {item!r}")
    return 0, tuple(pads)


def _as_array(value, name):
    """np.asarray, with the argument's name in its errors (ragged lists, odd objects)."""
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name} cannot be read as an array: {e}") from None


def check_input(x, name="x"):
    """Any array-like as a native-byte-order, aligned ndarray of a supported dtype."""
    arr = x if isinstance(x, np.ndarray) else _as_array(x, name)
    dt = arr.dtype
    if dt.kind not in "biuf" or (dt.kind == "f" and dt.itemsize not in (2, 4, 8)):
        raise TypeError(f"{name} has dtype {dt}, which pypool does not pool; expected {_SUPPORTED}")
    if not dt.isnative:
        arr = arr.astype(dt.newbyteorder("="))
    elif not arr.flags.aligned:
        arr = arr.copy()
    return arr


class Geometry:
    """Where the spatial axes are and how each is pooled, for one call."""

    __slots__ = ("rank", "channels_last", "lead", "spatial", "channels", "kernel", "stride",
                 "dilation", "pads", "out_spatial", "_out_shape", "_axes", "_work")

    def __init__(self):
        # Derived values, made on first use: a cached Geometry serves many calls
        # (its fields are never changed once it is returned).
        self._out_shape = self._axes = self._work = None

    def work(self):
        """Input reads of a sliding-window pool: outputs times taps per output."""
        if self._work is None:
            self._work = math.prod(self.out_shape()) * math.prod(self.kernel)
        return self._work

    def out_shape(self):
        if self._out_shape is None:
            self._out_shape = (self.lead + self.out_spatial
                               + ((self.channels,) if self.channels_last else ()))
        return self._out_shape

    def axes(self):
        """The 3 per-axis tuples the kernels take, unused leading axes as size 1."""
        if self._axes is None:
            rows = [(1, 1, 1, 1, 1, 0, 0)] * (3 - self.rank)
            for i in range(self.rank):
                rows.append((self.spatial[i], self.out_spatial[i], self.kernel[i],
                             self.stride[i], self.dilation[i], self.pads[i][0], self.pads[i][1]))
            self._axes = tuple(rows)
        return self._axes


def split_shape(shape, rank, channels_last, name="x"):
    """(lead, spatial, channels) of an input shape for a pool of this rank."""
    need = rank + (1 if channels_last else 0)
    if len(shape) < need:
        layout = "channels_last" if channels_last else "channels_first"
        raise ValueError(
            f"{name} has shape {tuple(shape)} ({len(shape)} dims); a {rank}-D pool with "
            f"layout={layout!r} needs at least {need} dims")
    if channels_last:
        return tuple(shape[:-rank - 1]), tuple(shape[-rank - 1:-1]), shape[-1]
    return tuple(shape[:-rank]), tuple(shape[-rank:]), 1


_GEOMETRY_CACHE = {}
_GEOMETRY_CACHE_SIZE = 256


def _plain(v):
    """An int, str or None, or a tuple of those / of int pairs: values whose == and
    hash cannot confuse kinds the checks tell apart (True == 1, 2.0 == 2)."""
    t = type(v)
    if t is int or t is str or v is None:
        return True
    if t is tuple:
        for e in v:
            te = type(e)
            if te is int:
                continue
            if te is tuple and all(type(q) is int for q in e):
                continue
            return False
        return True
    return False


def window_geometry(shape, kernel_size, stride, padding, dilation, ceil_mode, layout, rank=None,
                    name="x"):
    """Check every window argument and resolve pads and output sizes.

    Results for plain Python arguments are cached (a bounded dict; Geometry
    objects are never modified after construction), which halves the cost of
    a small call. Anything else - NumPy integers, lists - is checked afresh.
    """
    key = None
    if (type(ceil_mode) is bool and _plain(kernel_size) and _plain(stride)
            and _plain(padding) and _plain(dilation) and type(layout) is str
            and (rank is None or type(rank) is int)):
        key = (tuple(shape), kernel_size, stride, padding, dilation, ceil_mode, layout, rank, name)
        g = _GEOMETRY_CACHE.get(key)
        if g is not None:
            return g
    g = _window_geometry(shape, kernel_size, stride, padding, dilation, ceil_mode, layout, rank,
                         name)
    if key is not None:
        if len(_GEOMETRY_CACHE) >= _GEOMETRY_CACHE_SIZE:
            _GEOMETRY_CACHE.clear()
        _GEOMETRY_CACHE[key] = g
    return g


def _window_geometry(shape, kernel_size, stride, padding, dilation, ceil_mode, layout, rank,
                     name):
    rank = rank_from_kernel(kernel_size, rank)
    g = Geometry()
    g.rank = rank
    g.channels_last = check_layout(layout)
    g.kernel = per_axis("kernel_size", kernel_size, rank, 1)
    g.stride = per_axis("stride", stride, rank, 1, default=g.kernel)
    g.dilation = per_axis("dilation", dilation, rank, 1)
    mode, pads = parse_padding(padding, rank)
    ceil_mode = check_flag("ceil_mode", ceil_mode)
    g.lead, g.spatial, g.channels = split_shape(tuple(shape), rank, g.channels_last, name)
    resolved, out = [], []
    for i in range(rank):
        L, k, s, d = g.spatial[i], g.kernel[i], g.stride[i], g.dilation[i]
        pb, pe = pads[i]
        st, n, pb, pe = _native.axis_geometry(L, k, s, d, mode, pb, pe, ceil_mode)
        ext = (k - 1) * d + 1
        where = f"spatial axis {i} (input size {L}, kernel_size {k}, stride {s}, dilation {d})"
        if st == _ERR_PAD_TOO_LARGE:
            raise ValueError(f"padding ({pb}, {pe}) on {where} is too large: each pad must be "
                             f"smaller than the effective kernel extent (kernel_size-1)*dilation+1 = {ext}")
        if st == _ERR_EMPTY:
            q = L + pb + pe - ext
            size = (-(-q // s) if ceil_mode else q // s) + 1
            raise ValueError(f"output size on {where} with padding ({pb}, {pe}) would be {size}; "
                             f"it must be at least 1")
        if st == _ERR_OVERFLOW:
            raise ValueError(f"sizes on {where} with padding ({pb}, {pe}) overflow 64-bit arithmetic")
        if st != _OK:
            raise ValueError(f"invalid window on {where}: status {st}")
        resolved.append((pb, pe))
        out.append(n)
    g.pads = tuple(resolved)
    g.out_spatial = tuple(out)
    return g


def adaptive_geometry(shape, output_size, layout, rank=None, name="x"):
    """Check ``output_size`` (None entries keep the input size) for adaptive pooling."""
    channels_last = check_layout(layout)
    seq = as_sequence(output_size)
    if rank is None:
        seq = rank_sequence("output_size", output_size, "ints or None")
        rank = len(seq)
    elif seq is None:
        seq = (output_size,) * rank
    elif len(seq) != rank:
        raise ValueError(f"output_size must have {rank} entries (one per spatial axis), got {len(seq)}: "
                         f"{output_size!r}")
    g = Geometry()
    g.rank = rank
    g.channels_last = channels_last
    g.lead, g.spatial, g.channels = split_shape(tuple(shape), rank, channels_last, name)
    out = []
    for i, o in enumerate(seq):
        L = g.spatial[i]
        o = L if o is None else check_size(f"output_size[{i}]", o, 1)
        st = _native.adaptive_axis_status(L, o)   # the check the C API runs
        if st == _ERR_SHAPE:
            raise ValueError(f"{name} has size 0 on spatial axis {i}; adaptive pooling needs a "
                             f"non-empty input there")
        if st != _OK:
            raise ValueError(f"input size {L} times output_size {o} on spatial axis {i} overflows 2**62")
        out.append(o)
    g.out_spatial = tuple(out)
    g.kernel = g.stride = g.dilation = (1,) * rank
    g.pads = ((0, 0),) * rank
    return g


def check_norm_type(norm_type):
    """Lp order: a real number > 0, or inf."""
    if isinstance(norm_type, (bool, np.bool_)) or not isinstance(norm_type, (int, float, np.integer, np.floating)):
        raise TypeError(f"norm_type must be a real number > 0 (or inf), got {norm_type!r}")
    try:
        p = float(norm_type)
    except OverflowError:
        raise ValueError(f"norm_type must be a float > 0 (or inf), got {norm_type!r}, too large "
                         f"for a float") from None
    if not p > 0:  # also refuses NaN
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type!r}")
    return p


def check_shape(name, value):
    """A shape argument: a sequence of ints >= 0."""
    seq = as_sequence(value)
    if seq is None:
        raise TypeError(f"{name} must be a tuple of ints, got {value!r}")
    return tuple(check_size(f"{name}[{i}]", n, 0) for i, n in enumerate(seq))


def check_indices(indices, shape, like, name="indices"):
    """An integer index array of exactly ``shape`` (that of ``like``, for messages), as native int64."""
    arr = indices if isinstance(indices, np.ndarray) else _as_array(indices, name)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} has dtype {arr.dtype}; expected an integer dtype (int64)")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}; expected {tuple(shape)}, the shape of "
                         f"{like}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and arr.size and int(arr.max()) >= 2**63:
        raise ValueError(f"{name} holds {int(arr.max())}, beyond int64")
    if arr.dtype != np.int64 or not arr.dtype.isnative or not arr.flags.aligned:
        arr = arr.astype(np.int64)
    return arr


def grad_dtype(dtype):
    """Gradients keep float16/32/64 and are float64 for integer or bool input."""
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float64)


def global_geometry(shape, layout, name="x"):
    """(lead, spatial size, channels_last, result shape w/o and with keepdims) of global pooling."""
    channels_last = check_layout(layout)
    shape = tuple(shape)
    ndim = len(shape)
    if ndim < 3:
        want = "(N, *spatial, C)" if channels_last else "(N, C, *spatial)"
        raise ValueError(f"{name} has shape {shape}; global pooling needs at least 3 dims {want}")
    if channels_last:
        lead, spatial, keep = shape[:1], shape[1:-1], (shape[0],) + (1,) * (ndim - 2) + (shape[-1],)
        flat = (shape[0], shape[-1])
    else:
        lead, spatial, keep = shape[:2], shape[2:], shape[:2] + (1,) * (ndim - 2)
        flat = shape[:2]
    size = math.prod(spatial)
    if size == 0:
        raise ValueError(f"{name} has shape {shape}; global pooling needs non-empty spatial axes {spatial}")
    return lead, size, channels_last, flat, keep


def global_axes(size):
    """Kernel geometry of a global pool over merged spatial axes of this size."""
    return ((1, 1, 1, 1, 1, 0, 0), (1, 1, 1, 1, 1, 0, 0), (size, 1, size, 1, 1, 0, 0))


_SHAPE5 = {}


def shape5(lead, spatial, lanes):
    """The kernels' (B, D, H, W, V) shape: lead axes merged, missing spatial axes as 1."""
    batch = math.prod(lead) if lead else 1
    return (batch,) + (1,) * (3 - len(spatial)) + tuple(spatial) + (lanes,)


def view5(arr, lead, spatial, channels_last):
    """Reshape to the kernels' (B, D, H, W, V) view; a copy only if the strides demand one."""
    lanes = arr.shape[-1] if channels_last else 1
    key = (lead, spatial, lanes)
    shape = _SHAPE5.get(key)   # (a few hundred ns of tuple building saved per small call)
    if shape is None:
        shape = shape5(lead, spatial, lanes)
        if len(_SHAPE5) >= 256:
            _SHAPE5.clear()
        _SHAPE5[key] = shape
    return arr.reshape(shape)


def writable_view5(arr, lead, spatial, channels_last):
    """Like view5 for an output, or None when only a copy could give that shape."""
    v = view5(arr, lead, spatial, channels_last)
    if arr.flags.c_contiguous:   # (fresh results) a C-contiguous reshape is always a view
        return v
    if not elements_are_distinct(arr):   # threads must not write one place twice
        return None
    # reshape returns a view when it can and a copy when not; a copy is no target.
    if v.size and not np.may_share_memory(v, arr):
        return None
    return v


def check_out(out, shape, dtype, inputs, name="out"):
    """``out=`` must be a writable ndarray of exactly this shape and dtype, apart from the inputs."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}; expected {tuple(shape)}")
    if out.dtype != dtype:
        raise TypeError(f"{name} has dtype {out.dtype}; expected {np.dtype(dtype)}")
    if not out.flags.writeable:
        raise ValueError(f"{name} is read-only; it must be writable")
    if not out.flags.c_contiguous and not elements_are_distinct(out) and _self_overlapping(out):
        raise ValueError(f"{name} has strides {out.strides} under which several of its elements share "
                         f"memory (a broadcast view?), so it cannot hold a result")
    for other in inputs:
        if other is not None and np.may_share_memory(out, other) and _overlaps(out, other):
            raise ValueError(f"{name} overlaps an input array; pass a separate buffer")
    return out


# Bound on numpy's exact overlap search (an integer program: pathological strides
# could otherwise make it run for minutes); past it, overlap is assumed.
_OVERLAP_WORK = 100_000


def _overlaps(a, b):
    try:
        return np.shares_memory(a, b, max_work=_OVERLAP_WORK)
    except np.exceptions.TooHardError:
        return True


def _self_overlapping(arr):
    """Exact test: do two elements of ``arr`` start at the same byte? (Only run on
    layouts ``elements_are_distinct`` could not clear; a stride of 0 answers at once.)"""
    if any(n > 1 and st == 0 for n, st in zip(arr.shape, arr.strides)):
        return True
    if arr.size > 2**24:   # too many to list: kernels then write through a scratch copy
        return False
    offsets = np.zeros((), np.int64)
    for n, st in zip(arr.shape, arr.strides):
        offsets = (offsets[..., None] + np.arange(n, dtype=np.int64) * st).ravel()
    return np.unique(offsets).size != offsets.size


def elements_are_distinct(arr):
    """True when no two elements of ``arr`` can share memory (cheap, sufficient test).

    Axes sorted by stride must each step past everything the smaller-stride
    axes span; interleaved layouts that fail it still work, via a scratch copy.
    """
    span = arr.itemsize
    axes = sorted((abs(st), n) for n, st in zip(arr.shape, arr.strides) if n > 1)
    for step, n in axes:
        if step < span:
            return False
        span = step * (n - 1) + span
    return True


def result_array(out, shape, dtype, inputs, name="out"):
    """A new result array, or ``out`` once check_out accepted it."""
    if out is None:
        try:
            return np.empty(shape, dtype=dtype)
        except (MemoryError, ValueError):   # ValueError: more bytes than an address space holds
            nbytes = math.prod(shape) * np.dtype(dtype).itemsize
            raise MemoryError(f"the result would have shape {tuple(shape)} and dtype {np.dtype(dtype)} "
                              f"({nbytes} bytes), more memory than can be allocated") from None
    return check_out(out, shape, dtype, inputs, name=name)


def result_dtype_avg(in_dtype, dtype):
    """Averages keep float16/32/64 and give float64 for ints and bool; dtype= overrides."""
    if dtype is None:
        return np.dtype(in_dtype) if in_dtype.kind == "f" else np.dtype(np.float64)
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a floating dtype (float16, float32 or float64), got {dtype!r}") from None
    if dt.kind != "f" or dt.itemsize not in (2, 4, 8):
        raise TypeError(f"dtype must be float16, float32 or float64, got {dt}")
    return dt.newbyteorder("=")


def thread_count(num_threads, work):
    """Threads for one call: the OpenMP default, capped by num_threads; 1 for small work
    and in children made by fork() (the compiled ``thread_budget``, which C callers get too)."""
    if num_threads is None:
        requested = 0
    else:
        if not is_int(num_threads):
            raise TypeError(f"num_threads must be None or an int >= 1, got {num_threads!r}")
        if num_threads < 1:
            raise ValueError(f"num_threads must be None or an int >= 1, got {num_threads}")
        requested = min(int(num_threads), 2**31 - 1)
    return _native.threads_for(requested, min(work, SIZE_LIMIT))
