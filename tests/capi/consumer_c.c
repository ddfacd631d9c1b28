/*
 * A C extension module that uses pypool's C API the way an embedding
 * library would: it imports the table once, then calls the entries on raw
 * buffers without the GIL, from one thread or from several pthreads.
 *
 * tests/test_capi.py compiles it at test time against the installed pypool
 * (pypool.get_include()) and compares its results with the Python API.
 * Arrays come in through the buffer protocol (any object exporting one,
 * e.g. NumPy arrays, any strides), or as raw tensor descriptions
 * (address, dtype, ndim, shape or None, strides or None) to reach the
 * error paths (NULL pointers, bad dtypes, bad shapes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <string.h>

#include <pypool/pypool.h>

static const pypool_api *api = NULL;

/* ------------------------------------------------------------- arguments */

typedef struct {
    pypool_tensor tensor;
    int64_t shape[PYPOOL_MAX_NDIM];
    int64_t strides[PYPOOL_MAX_NDIM];
    Py_buffer view;
    int has_view;
    int is_null;    /* pass a NULL tensor pointer */
} tensor_arg;

static int dtype_from_format(const char *format, Py_ssize_t itemsize)
{
    char c;
    if (format == NULL)
        return PYPOOL_UINT8;
    if (*format == '@' || *format == '=' || *format == '<')
        format++;
    if (*format == '>' || *format == '!' || format[0] == '\0' || format[1] != '\0')
        return -1;
    c = *format;
    switch (c) {
    case '?': return PYPOOL_BOOL;
    case 'b': return PYPOOL_INT8;
    case 'B': return PYPOOL_UINT8;
    case 'e': return PYPOOL_FLOAT16;
    case 'f': return PYPOOL_FLOAT32;
    case 'd': return PYPOOL_FLOAT64;
    case 'h': case 'i': case 'l': case 'q':
        return itemsize == 2 ? PYPOOL_INT16 : itemsize == 4 ? PYPOOL_INT32
             : itemsize == 8 ? PYPOOL_INT64 : -1;
    case 'H': case 'I': case 'L': case 'Q':
        return itemsize == 2 ? PYPOOL_UINT16 : itemsize == 4 ? PYPOOL_UINT32
             : itemsize == 8 ? PYPOOL_UINT64 : -1;
    }
    return -1;
}

static int int64_items(PyObject *seq, int64_t *dst, Py_ssize_t n, const char *what)
{
    Py_ssize_t i;
    if (!PySequence_Check(seq) || PySequence_Size(seq) != n) {
        PyErr_Format(PyExc_ValueError, "%s: expected a sequence of %zd ints", what, n);
        return -1;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_GetItem(seq, i);
        if (item == NULL)
            return -1;
        dst[i] = PyLong_AsLongLong(item);
        Py_DECREF(item);
        if (dst[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* A raw description: (address, dtype, ndim, shape or None, strides or None). */
static int raw_tensor(PyObject *spec, tensor_arg *arg)
{
    PyObject *address, *shape, *strides;
    int dtype, ndim;
    if (!PyArg_ParseTuple(spec, "OiiOO", &address, &dtype, &ndim, &shape, &strides))
        return -1;
    if (ndim < 0 || ndim > PYPOOL_MAX_NDIM) {
        /* keep the count for pypool to refuse, but give it no arrays to read */
        arg->tensor.ndim = ndim;
        arg->tensor.shape = NULL;
        arg->tensor.strides = NULL;
    } else {
        arg->tensor.ndim = ndim;
        arg->tensor.shape = NULL;
        arg->tensor.strides = NULL;
        if (shape != Py_None) {
            if (int64_items(shape, arg->shape, ndim, "shape") < 0)
                return -1;
            arg->tensor.shape = arg->shape;
        }
        if (strides != Py_None) {
            if (int64_items(strides, arg->strides, ndim, "strides") < 0)
                return -1;
            arg->tensor.strides = arg->strides;
        }
    }
    arg->tensor.dtype = dtype;
    arg->tensor.data = PyLong_AsVoidPtr(address);
    if (arg->tensor.data == NULL && PyErr_Occurred())
        return -1;
    return 0;
}

static int get_tensor(PyObject *obj, int writable, tensor_arg *arg)
{
    int i, dtype;
    memset(arg, 0, sizeof *arg);
    if (obj == Py_None) {
        arg->is_null = 1;
        return 0;
    }
    if (PyTuple_Check(obj))
        return raw_tensor(obj, arg);
    if (PyObject_GetBuffer(obj, &arg->view,
                           PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    arg->has_view = 1;
    dtype = dtype_from_format(arg->view.format, arg->view.itemsize);
    if (dtype < 0) {
        PyErr_Format(PyExc_TypeError, "buffer format %s is no pypool dtype", arg->view.format);
        return -1;
    }
    arg->tensor.dtype = dtype;
    arg->tensor.ndim = arg->view.ndim;
    for (i = 0; i < arg->view.ndim; i++) {
        arg->shape[i] = arg->view.shape[i];
        if (arg->view.strides[i] % arg->view.itemsize != 0) {
            PyErr_SetString(PyExc_ValueError, "strides must be multiples of the item size");
            return -1;
        }
        arg->strides[i] = arg->view.strides[i] / arg->view.itemsize;
    }
    arg->tensor.shape = arg->shape;
    arg->tensor.strides = arg->strides;
    arg->tensor.data = arg->view.buf;
    return 0;
}

static void release_tensor(tensor_arg *arg)
{
    if (arg->has_view)
        PyBuffer_Release(&arg->view);
    arg->has_view = 0;
}

static const pypool_tensor *tensor_ptr(const tensor_arg *arg)
{
    return arg->is_null ? NULL : &arg->tensor;
}

static int params_from_dict(PyObject *dict, pypool_params *p, int *params_null)
{
    PyObject *v;
    long rank = 2;
    *params_null = 0;
    if (dict == Py_None) {
        *params_null = 1;
        return 0;
    }
    if (!PyDict_Check(dict)) {
        PyErr_SetString(PyExc_TypeError, "params must be a dict or None");
        return -1;
    }
    v = PyDict_GetItemString(dict, "rank");
    if (v != NULL && (rank = PyLong_AsLong(v)) == -1 && PyErr_Occurred())
        return -1;
    pypool_params_init(p, (int32_t)rank);
#define INT_FIELD(name, field)                                                   \
    v = PyDict_GetItemString(dict, name);                                        \
    if (v != NULL) {                                                             \
        long long value = PyLong_AsLongLong(v);                                  \
        if (value == -1 && PyErr_Occurred())                                     \
            return -1;                                                           \
        p->field = value;                                                        \
    }
#define AXES_FIELD(name, field)                                                  \
    v = PyDict_GetItemString(dict, name);                                        \
    if (v != NULL && int64_items(v, p->field, PySequence_Size(v), name) < 0)     \
        return -1;
    INT_FIELD("layout", layout)
    INT_FIELD("pad_mode", pad_mode)
    INT_FIELD("ceil_mode", ceil_mode)
    INT_FIELD("count_include_pad", count_include_pad)
    INT_FIELD("num_threads", num_threads)
    INT_FIELD("divisor_override", divisor_override)
    AXES_FIELD("kernel_size", kernel_size)
    AXES_FIELD("stride", stride)
    AXES_FIELD("dilation", dilation)
    AXES_FIELD("pad_begin", pad_begin)
    AXES_FIELD("pad_end", pad_end)
#undef INT_FIELD
#undef AXES_FIELD
    v = PyDict_GetItemString(dict, "norm_type");
    if (v != NULL) {
        p->norm_type = PyFloat_AsDouble(v);
        if (p->norm_type == -1.0 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- operations */

typedef struct {
    const char *name;
    int outputs;    /* bit i set: argument i is written */
    int nargs;
} op_info;

static const op_info OPS[] = {
    {"max_pool", 6, 3}, {"adaptive_max_pool", 6, 3}, {"global_max_pool", 6, 3},
    {"avg_pool", 2, 2}, {"lp_pool", 2, 2}, {"adaptive_avg_pool", 2, 2},
    {"global_avg_pool", 2, 2}, {"max_unpool", 4, 3}, {"max_pool_backward", 4, 3},
    {"avg_pool_backward", 2, 2}, {"lp_pool_backward", 4, 3},
    {"adaptive_avg_pool_backward", 2, 2}, {"global_avg_pool_backward", 2, 2},
};

static const op_info *find_op(const char *name)
{
    size_t i;
    for (i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (strcmp(OPS[i].name, name) == 0)
            return &OPS[i];
    PyErr_Format(PyExc_ValueError, "unknown operation %s", name);
    return NULL;
}

/* One call of the table: plain C, no Python, any thread. */
static int call_op(const op_info *op, const pypool_params *p, const pypool_tensor *a,
                   const pypool_tensor *b, const pypool_tensor *c)
{
    const char *n = op->name;
    if (!strcmp(n, "max_pool")) return api->max_pool(p, a, b, c);
    if (!strcmp(n, "adaptive_max_pool")) return api->adaptive_max_pool(p, a, b, c);
    if (!strcmp(n, "global_max_pool")) return api->global_max_pool(p, a, b, c);
    if (!strcmp(n, "avg_pool")) return api->avg_pool(p, a, b);
    if (!strcmp(n, "lp_pool")) return api->lp_pool(p, a, b);
    if (!strcmp(n, "adaptive_avg_pool")) return api->adaptive_avg_pool(p, a, b);
    if (!strcmp(n, "global_avg_pool")) return api->global_avg_pool(p, a, b);
    if (!strcmp(n, "max_unpool")) return api->max_unpool(p, a, b, c);
    if (!strcmp(n, "max_pool_backward")) return api->max_pool_backward(p, a, b, c);
    if (!strcmp(n, "avg_pool_backward")) return api->avg_pool_backward(p, a, b);
    if (!strcmp(n, "lp_pool_backward")) return api->lp_pool_backward(p, a, b, c);
    if (!strcmp(n, "adaptive_avg_pool_backward")) return api->adaptive_avg_pool_backward(p, a, b);
    return api->global_avg_pool_backward(p, a, b);
}

typedef struct {
    const op_info *op;
    pypool_params params;
    int params_null;
    tensor_arg args[3];
    int status;
} prepared_call;

static int prepare_call(const op_info *op, PyObject *params, PyObject *argv, prepared_call *call)
{
    Py_ssize_t i, n;
    memset(call, 0, sizeof *call);
    call->op = op;
    if (params_from_dict(params, &call->params, &call->params_null) < 0)
        return -1;
    if (!PyTuple_Check(argv)) {
        PyErr_SetString(PyExc_TypeError, "arrays must be a tuple");
        return -1;
    }
    n = PyTuple_GET_SIZE(argv);
    if (n > op->nargs) {   /* missing trailing arrays are passed as NULL */
        PyErr_Format(PyExc_TypeError, "%s takes at most %d arrays", op->name, op->nargs);
        return -1;
    }
    for (i = 0; i < 3; i++)
        call->args[i].is_null = 1;
    for (i = 0; i < n; i++)
        if (get_tensor(PyTuple_GET_ITEM(argv, i), (op->outputs >> i) & 1, &call->args[i]) < 0)
            return -1;
    return 0;
}

static void release_call(prepared_call *call)
{
    int i;
    for (i = 0; i < 3; i++)
        release_tensor(&call->args[i]);
}

static void run_call(prepared_call *call)
{
    call->status = call_op(call->op, call->params_null ? NULL : &call->params,
                           tensor_ptr(&call->args[0]), tensor_ptr(&call->args[1]),
                           tensor_ptr(&call->args[2]));
}

/* run(op, params, arrays) -> status, with the GIL released during the call. */
static PyObject *run(PyObject *self, PyObject *args)
{
    const char *name;
    PyObject *params, *argv;
    const op_info *op;
    prepared_call call;
    if (!PyArg_ParseTuple(args, "sOO", &name, &params, &argv))
        return NULL;
    if ((op = find_op(name)) == NULL)
        return NULL;
    if (prepare_call(op, params, argv, &call) < 0) {
        release_call(&call);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    run_call(&call);
    Py_END_ALLOW_THREADS
    release_call(&call);
    return PyLong_FromLong(call.status);
}

static void *thread_main(void *arg)
{
    run_call((prepared_call *)arg);
    return NULL;
}

/* run_threads(op, params, [arrays, ...]) -> [status, ...]: one pthread per
 * call, all running at once with the GIL released. */
static PyObject *run_threads(PyObject *self, PyObject *args)
{
    const char *name;
    PyObject *params, *calls, *result = NULL;
    const op_info *op;
    prepared_call *prepared;
    pthread_t *threads;
    Py_ssize_t i, n, started = 0;
    if (!PyArg_ParseTuple(args, "sOO!", &name, &params, &PyList_Type, &calls))
        return NULL;
    if ((op = find_op(name)) == NULL)
        return NULL;
    n = PyList_GET_SIZE(calls);
    prepared = calloc((size_t)n + 1, sizeof *prepared);
    threads = calloc((size_t)n + 1, sizeof *threads);
    if (prepared == NULL || threads == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++)
        if (prepare_call(op, params, PyList_GET_ITEM(calls, i), &prepared[i]) < 0)
            goto done;
    Py_BEGIN_ALLOW_THREADS
    for (started = 0; started < n; started++)
        if (pthread_create(&threads[started], NULL, thread_main, &prepared[started]) != 0)
            break;
    for (i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    Py_END_ALLOW_THREADS
    if (started < n) {
        PyErr_SetString(PyExc_RuntimeError, "pthread_create failed");
        goto done;
    }
    result = PyList_New(n);
    for (i = 0; result != NULL && i < n; i++)
        PyList_SET_ITEM(result, i, PyLong_FromLong(prepared[i].status));
done:
    if (prepared != NULL)
        for (i = 0; i < n; i++)
            release_call(&prepared[i]);
    free(prepared);
    free(threads);
    return result;
}

/* ------------------------------------------------------------- geometry */

static PyObject *shape_tuple(const int64_t *v, int n)
{
    PyObject *t = PyTuple_New(n);
    int i;
    for (i = 0; t != NULL && i < n; i++)
        PyTuple_SET_ITEM(t, i, PyLong_FromLongLong(v[i]));
    return t;
}

/* geometry(kind, params, input_shape) -> (status, result); kind is
 * "pooled_shape", "unpooled_shape" or "resolve_padding" (result: pairs). */
static PyObject *geometry(PyObject *self, PyObject *args)
{
    const char *kind;
    PyObject *params, *shape_obj;
    pypool_params p;
    int params_null, status, n, i;
    int64_t shape[PYPOOL_MAX_NDIM], out[PYPOOL_MAX_NDIM], pb[3], pe[3];
    if (!PyArg_ParseTuple(args, "sOO", &kind, &params, &shape_obj))
        return NULL;
    if (params_from_dict(params, &p, &params_null) < 0)
        return NULL;
    n = (int)PySequence_Size(shape_obj);
    if (n < 0 || n > PYPOOL_MAX_NDIM || int64_items(shape_obj, shape, n, "input_shape") < 0)
        return NULL;
    if (!strcmp(kind, "pooled_shape")) {
        status = api->pooled_shape(params_null ? NULL : &p, n, shape, out);
        return Py_BuildValue("iN", status, status ? Py_NewRef(Py_None) : shape_tuple(out, n));
    }
    if (!strcmp(kind, "unpooled_shape")) {
        status = api->unpooled_shape(params_null ? NULL : &p, n, shape, out);
        return Py_BuildValue("iN", status, status ? Py_NewRef(Py_None) : shape_tuple(out, n));
    }
    status = api->resolve_padding(params_null ? NULL : &p, n, shape, pb, pe);
    if (status)
        return Py_BuildValue("iO", status, Py_None);
    {
        PyObject *pairs = PyTuple_New(p.rank);
        for (i = 0; pairs != NULL && i < p.rank; i++)
            PyTuple_SET_ITEM(pairs, i, Py_BuildValue("(LL)", (long long)pb[i], (long long)pe[i]));
        return Py_BuildValue("iN", status, pairs);
    }
}

static PyObject *resolve_axis(PyObject *self, PyObject *args)
{
    pypool_axis a;
    int pad_mode, ceil_mode, status;
    long long L, k, s, d, pb, pe;
    if (!PyArg_ParseTuple(args, "LLLLLLii", &L, &k, &s, &d, &pb, &pe, &pad_mode, &ceil_mode))
        return NULL;
    a.in_size = L;
    a.kernel = k;
    a.stride = s;
    a.dilation = d;
    a.pad_begin = pb;
    a.pad_end = pe;
    a.out_size = -1;
    status = api->resolve_axis(&a, pad_mode, ceil_mode);
    return Py_BuildValue("iLLL", status, (long long)a.out_size, (long long)a.pad_begin,
                         (long long)a.pad_end);
}

static PyObject *message(PyObject *self, PyObject *args)
{
    int status;
    if (!PyArg_ParseTuple(args, "i", &status))
        return NULL;
    return PyUnicode_FromString(api->status_message(status));
}

static PyObject *detail(PyObject *self, PyObject *unused)
{
    return PyUnicode_FromString(api->error_detail());
}

/* ------------------------------------------------------------- versions */

static PyObject *versions(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("(II)(ii)", api->abi_version, api->api_level, PYPOOL_ABI_VERSION,
                         PYPOOL_API_LEVEL);
}

/* import_api(): pypool_import() again (after a test swapped the capsule). */
static PyObject *import_api(PyObject *self, PyObject *unused)
{
    const pypool_api *fresh = pypool_import();
    if (fresh == NULL)
        return NULL;
    return Py_BuildValue("II", fresh->abi_version, fresh->api_level);
}

static pypool_api fake_table;

/* fake_capsule(abi, level): the real table with other version numbers, under
 * the real capsule name - what an incompatible pypool install would export. */
static PyObject *fake_capsule(PyObject *self, PyObject *args)
{
    unsigned int abi, level;
    if (!PyArg_ParseTuple(args, "II", &abi, &level))
        return NULL;
    fake_table = *api;
    fake_table.abi_version = abi;
    fake_table.api_level = level;
    return PyCapsule_New(&fake_table, PYPOOL_CAPI_CAPSULE, NULL);
}

static PyMethodDef methods[] = {
    {"run", run, METH_VARARGS, "run(op, params, arrays) -> status (GIL released)"},
    {"run_threads", run_threads, METH_VARARGS, "run_threads(op, params, [arrays]) -> [status]"},
    {"geometry", geometry, METH_VARARGS, "geometry(kind, params, shape) -> (status, result)"},
    {"resolve_axis", resolve_axis, METH_VARARGS, "resolve_axis(...) -> (status, out, pb, pe)"},
    {"message", message, METH_VARARGS, "status_message(status)"},
    {"detail", detail, METH_NOARGS, "error_detail() of this thread"},
    {"versions", versions, METH_NOARGS, "((table abi, level), (header abi, level))"},
    {"import_api", import_api, METH_NOARGS, "pypool_import() again"},
    {"fake_capsule", fake_capsule, METH_VARARGS, "a capsule with other versions"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pypool_consumer_c", "pypool C API consumer (tests)", -1, methods,
};

PyMODINIT_FUNC PyInit_pypool_consumer_c(void)
{
    api = pypool_import();
    if (api == NULL)
        return NULL;
    return PyModule_Create(&module);
}
