/*
 * A C program that embeds Python only to fetch pypool's C API, then pools
 * buffers it allocated itself, from its own threads, without the GIL.
 *
 * It pools SPEC section 8's worked example (a 4x4 input, 2x2 windows at
 * stride 2) and a larger input on two OpenMP threads, prints what it got, and
 * exits with 0 only when every number matches; tests/test_capi.py builds and
 * runs it, and tools/valgrind.sh runs it under memcheck.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pypool/pypool.h>

static const pypool_api *api;
static int failures = 0;

static void expect(const char *what, const float *got, const float *want, int n)
{
    int i, ok = 1;
    printf("%s:", what);
    for (i = 0; i < n; i++) {
        printf(" %g", got[i]);
        ok &= got[i] == want[i];
    }
    printf(ok ? "  ok\n" : "  MISMATCH\n");
    failures += !ok;
}

typedef struct {
    const float *input;
    float output[4];
    int status;
} job;

/* Average pooling of the example, run on a thread Python knows nothing of. */
static void *average_job(void *arg)
{
    job *j = arg;
    int64_t in_shape[2] = {4, 4}, out_shape[2] = {2, 2};
    pypool_tensor x = {(void *)j->input, PYPOOL_FLOAT32, 2, in_shape, NULL};
    pypool_tensor y = {j->output, PYPOOL_FLOAT32, 2, out_shape, NULL};
    pypool_params p;
    pypool_params_init(&p, 2);
    p.kernel_size[0] = p.kernel_size[1] = 2;
    j->status = api->avg_pool(&p, &x, &y);
    return NULL;
}

int main(void)
{
    static const float example[16] = {1, 1, 2, 4, 5, 6, 7, 8, 3, 2, 1, 0, 1, 2, 3, 4};
    const float want_max[4] = {6, 8, 3, 4}, want_avg[4] = {3.25f, 5.25f, 2, 2};
    const float want_global[1] = {3.125f};
    int64_t in_shape[4] = {1, 1, 4, 4}, out_shape[4];
    int64_t indices[4], index_shape[4];
    float *input, *output, global_out[1];
    pypool_params p;
    pypool_tensor x, y, ind, g;
    PyThreadState *saved;
    pthread_t threads[4];
    job jobs[4];
    int status, i;

    Py_Initialize();
    api = pypool_import();
    if (api == NULL) {
        PyErr_Print();
        return 2;
    }
    /* The C API needs no Python: let go of the GIL for the rest. */
    saved = PyEval_SaveThread();

    input = malloc(16 * sizeof *input);
    output = malloc(4 * sizeof *output);
    if (input == NULL || output == NULL)
        return 3;
    for (i = 0; i < 16; i++)
        input[i] = example[i];

    pypool_params_init(&p, 2);
    p.kernel_size[0] = p.kernel_size[1] = 2;   /* stride 0: the kernel size */
    status = api->pooled_shape(&p, 4, in_shape, out_shape);
    printf("pooled shape: (%lld, %lld, %lld, %lld)\n", (long long)out_shape[0],
           (long long)out_shape[1], (long long)out_shape[2], (long long)out_shape[3]);
    if (status != PYPOOL_OK || out_shape[2] != 2 || out_shape[3] != 2)
        failures++;

    x.data = input;
    x.dtype = PYPOOL_FLOAT32;
    x.ndim = 4;
    x.shape = in_shape;
    x.strides = NULL;
    y = x;
    y.data = output;
    y.shape = out_shape;
    for (i = 0; i < 4; i++)
        index_shape[i] = out_shape[i];
    ind.data = indices;
    ind.dtype = PYPOOL_INT64;
    ind.ndim = 4;
    ind.shape = index_shape;
    ind.strides = NULL;
    status = api->max_pool(&p, &x, &y, &ind);
    if (status != PYPOOL_OK) {
        printf("max_pool failed: %s (%s)\n", api->status_message(status), api->error_detail());
        failures++;
    }
    expect("max", output, want_max, 4);
    printf("indices: %lld %lld %lld %lld\n", (long long)indices[0], (long long)indices[1],
           (long long)indices[2], (long long)indices[3]);
    if (indices[0] != 5 || indices[1] != 7 || indices[2] != 8 || indices[3] != 15)
        failures++;

    /* The same average from 4 threads at once. */
    for (i = 0; i < 4; i++) {
        jobs[i].input = input;
        pthread_create(&threads[i], NULL, average_job, &jobs[i]);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        if (jobs[i].status != PYPOOL_OK)
            failures++;
        expect("avg (thread)", jobs[i].output, want_avg, 4);
    }

    /* Global average: (N, C, H, W) -> (N, C). */
    {
        int64_t global_shape[2] = {1, 1};
        pypool_params gp;
        pypool_params_init(&gp, 0);   /* global pooling reads only layout and num_threads */
        g.data = global_out;
        g.dtype = PYPOOL_FLOAT32;
        g.ndim = 2;
        g.shape = global_shape;
        g.strides = NULL;
        status = api->global_avg_pool(&gp, &x, &g);
        if (status != PYPOOL_OK)
            failures++;
        expect("global avg", global_out, want_global, 1);
    }

    /* A max pool large enough for an OpenMP team: 2 threads must give the same
       bits as 1 (under valgrind this also runs the OpenMP runtime's threads). */
    {
        enum { C = 16, H = 64, W = 64 };
        int64_t big_shape[4] = {1, C, H, W}, half_shape[4] = {1, C, H / 2, W / 2};
        size_t n_in = (size_t)C * H * W, n_out = n_in / 4, k;
        float *big = malloc(n_in * sizeof *big);
        float *two = malloc(n_out * sizeof *two), *one = malloc(n_out * sizeof *one);
        pypool_params bp;
        pypool_tensor bx = {NULL, PYPOOL_FLOAT32, 4, NULL, NULL}, by;
        if (big == NULL || two == NULL || one == NULL)
            return 3;
        for (k = 0; k < n_in; k++)
            big[k] = (float)((k * 7919u) % 1000u) / 8.0f;
        bx.data = big;
        bx.shape = big_shape;
        by = bx;
        by.shape = half_shape;
        pypool_params_init(&bp, 2);
        bp.kernel_size[0] = bp.kernel_size[1] = 2;
        bp.num_threads = 2;
        by.data = two;
        status = api->max_pool(&bp, &bx, &by, NULL);
        bp.num_threads = 1;
        by.data = one;
        if (status == PYPOOL_OK)
            status = api->max_pool(&bp, &bx, &by, NULL);
        k = status == PYPOOL_OK && memcmp(two, one, n_out * sizeof *one) == 0;
        printf("max (2 threads): %s\n", k ? "same as 1 thread  ok" : "MISMATCH");
        failures += !k;
        free(big);
        free(two);
        free(one);
    }

    /* A bad call returns a status and a message, and writes nothing. */
    p.kernel_size[1] = 0;
    status = api->max_pool(&p, &x, &y, NULL);
    printf("kernel 0: status %d, %s; %s\n", status, api->status_message(status),
           api->error_detail());
    if (status != PYPOOL_ERR_KERNEL)
        failures++;

    free(input);
    free(output);
    PyEval_RestoreThread(saved);
    if (Py_FinalizeEx() < 0)
        return 4;
    printf(failures ? "FAILED\n" : "all ok\n");
    return failures ? 1 : 0;
}
