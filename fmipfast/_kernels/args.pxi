# Argument helpers every def wrapper uses (included by _core.pyx, before the kernel fragments; not a module).
#
# Two kinds, both word for word with fmipfast.reference (its wire._array, cksum._octets, derive._rows):
#
#   * checks: _octets / _buffer_arg / _rows take a caller's object as a buffer of the right element type,
#     dimension count and layout, with the reference's exception classes and messages; _need, _same_rows
#     and _int_arg check sizes, row counts and integer ranges (_int_in: the same range test without raising,
#     for a scalar fast path that leaves anything else to the reference's check); _span_outside is the
#     overflow-proof "is [offset, offset + length) outside the buffer" every batch kernel uses;
#   * data pointers: _np_vec (the per-block fast path: an exact 1-D numpy array of one dtype, else the caller
#     takes the typed view), _data (1-D view), _rows_data (2-D view), _row0 (any C-contiguous numpy array of
#     at least one row) and _u8p (a uint8 array, or NULL for None).  An empty view's pointer is _EMPTY, a
#     one-octet stand-in that is never read (the kernels read 0 octets of it), so no kernel sees NULL and
#     `&view[0]` is never taken on an empty view.

import numpy as _np

cimport numpy as cnp

cnp.import_array()


cdef uint8_t _EMPTY[1]


# ---- checks ------------------------------------------------------------------------------------------------

cdef inline int _need(Py_ssize_t found, str name, Py_ssize_t size) except -1:
    if found != size:
        _raise_for_status(ST_WRONG_SIZE, name, found, size)
    return 0


cdef int _int_arg(object value, int status, int low, int high) except? -1:
    """``value`` as a C int in ``low..high``: TypeError for non-integers, else the status's ValueError."""
    value = _index(value)
    if not low <= value <= high:
        _raise_for_status(status, None, value)
    return value


cdef const uint8_t[::1] _octets(object obj) except *:
    """``obj`` as a 1-D C-contiguous octet view, with the reference's exception classes.

    Taking the view directly raises BufferError for a non-contiguous memoryview (its own refusal of a
    contiguous request) where fmipfast.reference raises ValueError, and accepts None; so: TypeError for
    None or an object without the buffer protocol, ValueError for a wrong dimension count, format or
    layout, BufferError never.
    """
    cdef const uint8_t[::1] view
    if obj is None:
        raise TypeError("a bytes-like object is required, not 'NoneType'")
    try:
        view = obj
    except BufferError:
        raise ValueError("Buffer not C contiguous.") from None
    return view


cdef inline bint _int_in(object x, long long low, long long high, long long* out):
    """``x`` as a C integer in ``low..high`` when it is an int or an int subclass (an IntEnum or IntFlag member;
    not a bool): its own value, read from the int itself (no method of a subclass runs, so what is checked is
    what is written).  False for anything else or out of range: the caller takes the reference's check."""
    cdef long long v
    if not isinstance(x, int) or isinstance(x, bool):
        return False
    try:
        v = x
    except OverflowError:
        return False
    if v < low or v > high:
        return False
    out[0] = v
    return True


_SIGNED_FORMATS, _UNSIGNED_FORMATS = "bhilqn", "BHILQN"


cdef object _buffer_arg(object value, str name, str kinds, Py_ssize_t itemsize, bint writable=False):
    """Check ``value`` as a 1-D C-contiguous buffer of ``itemsize``-octet integers of ``kinds`` before a
    typed view of it is taken, word for word as fmipfast.reference.wire._array does: TypeError without the
    buffer protocol (None included), ValueError for a wrong dimension count, format or layout (BufferError
    never: a non-contiguous memoryview is a ValueError here too), ValueError for a read-only ``writable``.
    """
    view = memoryview(value)  # TypeError without the buffer protocol
    if view.ndim != 1:
        raise ValueError(f"{name}: Buffer has wrong number of dimensions (expected 1, got {view.ndim})")
    fmt = view.format.lstrip("@=<>!")
    if fmt not in kinds or view.itemsize != itemsize:
        raise _dtype_error(name, kinds, itemsize, view.format)
    if not view.c_contiguous:
        raise ValueError(f"{name}: Buffer not C contiguous.")
    if writable and view.readonly:
        raise ValueError(f"{name}: buffer is read-only")
    return value


cdef inline bint _span_outside(int64_t offset, uint64_t length, uint64_t size) noexcept nogil:
    """True unless ``0 <= offset`` and ``offset + length <= size``.

    Overflow-proof: a negative offset is rejected first, and the sum is never formed (``length > size or
    offset > size - length`` in unsigned arithmetic), so offsets and lengths near 2**63 or 2**64 cannot
    wrap around into range.
    """
    return offset < 0 or length > size or <uint64_t>offset > size - length


def _rows(obj, str name, Py_ssize_t width, bint allow_single=False):
    """``obj`` as a C-contiguous uint8 array of shape (n, width) (or (width,) when ``allow_single``).

    TypeError names the argument when it is not a uint8 array (no silent casting); ValueError names it
    when the shape is wrong.  A non-contiguous array is copied.  Reference: fmipfast.reference.derive._rows
    """
    if obj is None:
        raise TypeError(f"{name}: need a numpy uint8 array, got None")
    arr = _np.asarray(obj)
    if arr.dtype != _np.uint8:
        raise TypeError(f"{name}: need dtype uint8, got {arr.dtype}")
    if allow_single and arr.ndim == 1 and arr.shape[0] == width:
        return _np.ascontiguousarray(arr)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise ValueError(f"{name}: need shape (n, {width}), got {tuple(arr.shape)}")
    return _np.ascontiguousarray(arr)


cdef inline int _same_rows(Py_ssize_t found, str name, Py_ssize_t n) except -1:
    if found != n:
        raise ValueError(f"{name}: need {n} rows (one per entry), got {found}")
    return 0


# ---- data pointers -----------------------------------------------------------------------------------------

cdef inline bint _np_vec(object obj, int typenum, bint writable, char** data, Py_ssize_t* n) noexcept:
    """The fast way to take an array argument on a per-block path: True, with its data pointer and length,
    when ``obj`` is exactly a numpy array, 1-D, C-contiguous, aligned, in native byte order, of ``typenum``
    (and writable when ``writable``); else False, and nothing is written.  The caller then takes the argument
    through its typed memoryview and the shared checks, which take any other buffer and raise the reference's
    errors.  A typed memoryview costs about 100 ns of buffer-protocol work per argument (the format string
    built and parsed, a lock, two allocations); this, a few loads.  The caller holds a reference to ``obj``
    for as long as it uses the pointer (a numpy array with a reference held cannot be resized)."""
    if type(obj) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>obj
    if (cnp.PyArray_NDIM(a) != 1 or cnp.PyArray_TYPE(a) != typenum
            or not cnp.PyArray_CHKFLAGS(a, cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED)
            or not cnp.PyArray_ISNOTSWAPPED(a) or (writable and not cnp.PyArray_ISWRITEABLE(a))):
        return False
    data[0] = <char*>cnp.PyArray_DATA(a)
    n[0] = cnp.PyArray_DIM(a, 0)
    return True


@cython.boundscheck(False)  # SAFETY: view[0] is only taken after the shape[0] == 0 guard
cdef inline const uint8_t* _data(const uint8_t[::1] view) noexcept:
    """The first octet of a possibly empty view (a harmless stand-in when it is empty)."""
    if view.shape[0] == 0:
        return _EMPTY
    return &view[0]


cdef inline const uint8_t* _rows_data(const uint8_t[:, ::1] view) noexcept:
    """The first octet of a possibly empty [n, width] view (the stand-in when it has no rows)."""
    if view.shape[0] == 0:
        return _EMPTY
    return &view[0, 0]


cdef void* _row0(object array) except NULL:
    """The data pointer of a C-contiguous numpy array (of at least one row)."""
    cdef uint8_t[::1] octets = array.reshape(-1).view(_np.uint8)
    return <void*>&octets[0]


cdef inline const uint8_t* _u8p(object arr) except? NULL:
    """Data pointer of a C-contiguous, non-empty uint8 array (any shape), or NULL for None."""
    if arr is None:
        return NULL
    cdef const uint8_t[::1] flat = arr.reshape(-1)
    return &flat[0]
