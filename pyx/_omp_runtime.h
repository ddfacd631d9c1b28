/* Which OpenMP runtime library this module's OpenMP calls are bound to, for
 * show_config(): a wheel carries its own copy (auditwheel renames libgomp to
 * pypool.libs/libgomp-<hash>.so), and other packages (PyTorch, MKL) may load
 * another one into the same process, so the answer is looked up at run time
 * from the address of an OpenMP function as this module sees it. */
#ifndef PYPOOL_OMP_RUNTIME_H
#define PYPOOL_OMP_RUNTIME_H

#if defined(_OPENMP) && defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <omp.h>
static const char* pypool_openmp_runtime(void) {
    static char path[4 * MAX_PATH];
    HMODULE mod = NULL;
    DWORD n;
    if (!GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            (LPCSTR)(void*)&omp_get_max_threads, &mod))
        return NULL;
    n = GetModuleFileNameA(mod, path, (DWORD)sizeof path);
    return (n == 0 || n >= (DWORD)sizeof path) ? NULL : path;
}

#elif defined(_OPENMP)
#ifndef _GNU_SOURCE
#define _GNU_SOURCE  /* dladdr on glibc (Python.h normally defines it already) */
#endif
#include <dlfcn.h>
#include <omp.h>
static const char* pypool_openmp_runtime(void) {
    Dl_info info;
    if (dladdr((void*)&omp_get_max_threads, &info) && info.dli_fname && info.dli_fname[0])
        return info.dli_fname;
    return NULL;
}

#else
static const char* pypool_openmp_runtime(void) { return NULL; }  /* serial build */
#endif

#endif
