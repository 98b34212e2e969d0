/* p11shim: a PKCS#11 module for tests that forwards every call to a real module (SoftHSM2) and
 * injects token faults into C_Sign: before each C_Sign it reads the control file named by
 * P11SHIM_CTL (missing: no fault), which holds one line:
 *   fail 0xRV   C_Sign returns CKR value RV without calling the module (a device error, an
 *               invalidated session, a logged-out user, a removed token, ...)
 *   slow MS     C_Sign sleeps MS milliseconds, then calls the module (a slow token)
 * P11SHIM_MODULE names the real module (default: Debian's SoftHSM2). Built as
 * build/<mode>/tests/libp11shim.so; used by tests/hsm/test_pkcs11.c. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST shim;
static CK_FUNCTION_LIST_PTR real;

static CK_RV shim_sign(CK_SESSION_HANDLE h, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
                       CK_ULONG_PTR sig_len)
{
    const char *ctl = getenv("P11SHIM_CTL");
    FILE *f = ctl != NULL ? fopen(ctl, "r") : NULL;
    if (f != NULL) {
        char word[16] = "";
        unsigned long n = 0;
        int got = fscanf(f, "%15s %li", word, (long *)&n);
        fclose(f);
        if (got == 2 && strcmp(word, "fail") == 0) {
            return (CK_RV)n;
        }
        if (got == 2 && strcmp(word, "slow") == 0) {
            struct timespec ts = {.tv_sec = (time_t)(n / 1000),
                                  .tv_nsec = (long)(n % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return real->C_Sign(h, data, len, sig, sig_len);
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out);

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    if (real == NULL) {
        const char *path = getenv("P11SHIM_MODULE");
        void *dl = dlopen(path != NULL ? path : "/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW);
        CK_C_GetFunctionList get =
            dl != NULL ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList") : NULL;
        if (get == NULL || get(&real) != CKR_OK) {
            real = NULL;
            return CKR_GENERAL_ERROR;
        }
        shim = *real;
        shim.C_Sign = shim_sign;
    }
    *out = &shim;
    return CKR_OK;
}
