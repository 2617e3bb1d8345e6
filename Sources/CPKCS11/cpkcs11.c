// The PKCS#11 calls the store needs, through the module's function list (C_GetFunctionList): the API
// is a C struct of function pointers, which is simpler to drive from C than from Swift.
#include "cpkcs11.h"
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit/pkcs11.h>

struct ikp_p11 {
    void *library;
    CK_FUNCTION_LIST_PTR functions;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE key;
    int initialized, logged_in, session_open;
};

static void fail(char *error, size_t size, const char *what, CK_RV rv) {
    if (error && size) snprintf(error, size, "%s (CKR 0x%lx)", what, (unsigned long)rv);
}

void ikp_p11_close(ikp_p11 *p11) {
    if (!p11) return;
    if (p11->logged_in) p11->functions->C_Logout(p11->session);
    if (p11->session_open) p11->functions->C_CloseSession(p11->session);
    if (p11->initialized) p11->functions->C_Finalize(NULL);
    if (p11->library) dlclose(p11->library);
    free(p11);
}

static int label_matches(const CK_UTF8CHAR *field, size_t field_size, const char *label) {
    size_t length = strlen(label);
    if (length > field_size) return 0;
    if (memcmp(field, label, length) != 0) return 0;
    for (size_t i = length; i < field_size; i++) if (field[i] != ' ') return 0;
    return 1;
}

ikp_p11 *ikp_p11_open(const char *module_path, const char *token_label, const char *pin, const char *key_label,
                      char *error, size_t error_size) {
    ikp_p11 *p11 = calloc(1, sizeof(*p11));
    if (!p11) { fail(error, error_size, "out of memory", 0); return NULL; }
    p11->library = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    if (!p11->library) {
        if (error) snprintf(error, error_size, "cannot load PKCS#11 module %s: %s", module_path, dlerror());
        free(p11);
        return NULL;
    }
    CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(p11->library, "C_GetFunctionList");
    CK_RV rv;
    if (!get_list || (rv = get_list(&p11->functions)) != CKR_OK) { fail(error, error_size, "module has no C_GetFunctionList", 0); ikp_p11_close(p11); return NULL; }
    if ((rv = p11->functions->C_Initialize(NULL)) != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        fail(error, error_size, "C_Initialize failed", rv); ikp_p11_close(p11); return NULL;
    }
    p11->initialized = 1;
    CK_ULONG count = 0;
    if ((rv = p11->functions->C_GetSlotList(CK_TRUE, NULL, &count)) != CKR_OK || count == 0) {
        fail(error, error_size, "no token present", rv); ikp_p11_close(p11); return NULL;
    }
    CK_SLOT_ID *slots = calloc(count, sizeof(CK_SLOT_ID));
    if (!slots || (rv = p11->functions->C_GetSlotList(CK_TRUE, slots, &count)) != CKR_OK) {
        free(slots); fail(error, error_size, "C_GetSlotList failed", rv); ikp_p11_close(p11); return NULL;
    }
    CK_SLOT_ID slot = 0;
    int found = 0;
    for (CK_ULONG i = 0; i < count && !found; i++) {
        CK_TOKEN_INFO info;
        if (p11->functions->C_GetTokenInfo(slots[i], &info) == CKR_OK && label_matches(info.label, sizeof(info.label), token_label)) {
            slot = slots[i];
            found = 1;
        }
    }
    free(slots);
    if (!found) {
        if (error) snprintf(error, error_size, "no token labelled '%s' is present", token_label);
        ikp_p11_close(p11); return NULL;
    }
    if ((rv = p11->functions->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &p11->session)) != CKR_OK) {
        fail(error, error_size, "C_OpenSession failed", rv); ikp_p11_close(p11); return NULL;
    }
    p11->session_open = 1;
    rv = p11->functions->C_Login(p11->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) { fail(error, error_size, "login refused (wrong PIN?)", rv); ikp_p11_close(p11); return NULL; }
    p11->logged_in = 1;

    CK_OBJECT_CLASS class = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ATTRIBUTE search[] = {
        {CKA_CLASS, &class, sizeof(class)}, {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_LABEL, (void *)key_label, strlen(key_label)},
    };
    CK_ULONG matches = 0;
    if ((rv = p11->functions->C_FindObjectsInit(p11->session, search, 3)) != CKR_OK) { fail(error, error_size, "C_FindObjectsInit failed", rv); ikp_p11_close(p11); return NULL; }
    rv = p11->functions->C_FindObjects(p11->session, &p11->key, 1, &matches);
    p11->functions->C_FindObjectsFinal(p11->session);
    if (rv != CKR_OK) { fail(error, error_size, "C_FindObjects failed", rv); ikp_p11_close(p11); return NULL; }
    if (matches == 0) {
        // First use of this token: the sealing key is made inside it and can never leave it.
        CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
        CK_ULONG length = 32;
        CK_MECHANISM mechanism = {CKM_AES_KEY_GEN, NULL, 0};
        CK_ATTRIBUTE template[] = {
            {CKA_CLASS, &class, sizeof(class)}, {CKA_KEY_TYPE, &type, sizeof(type)},
            {CKA_LABEL, (void *)key_label, strlen(key_label)}, {CKA_VALUE_LEN, &length, sizeof(length)},
            {CKA_TOKEN, &yes, sizeof(yes)}, {CKA_PRIVATE, &yes, sizeof(yes)}, {CKA_SENSITIVE, &yes, sizeof(yes)},
            {CKA_EXTRACTABLE, &no, sizeof(no)}, {CKA_ENCRYPT, &yes, sizeof(yes)}, {CKA_DECRYPT, &yes, sizeof(yes)},
        };
        if ((rv = p11->functions->C_GenerateKey(p11->session, &mechanism, template, 10, &p11->key)) != CKR_OK) {
            fail(error, error_size, "cannot generate the sealing key on the token", rv); ikp_p11_close(p11); return NULL;
        }
    }
    return p11;
}

long ikp_p11_gcm(ikp_p11 *p11, int encrypt, const unsigned char *iv, size_t iv_length, const unsigned char *aad, size_t aad_length,
                 const unsigned char *input, size_t input_length, unsigned char *output, char *error, size_t error_size) {
    CK_GCM_PARAMS parameters;
    memset(&parameters, 0, sizeof(parameters));
    parameters.pIv = (CK_BYTE_PTR)iv;
    parameters.ulIvLen = iv_length;
    parameters.ulIvBits = iv_length * 8;
    parameters.pAAD = (CK_BYTE_PTR)aad;
    parameters.ulAADLen = aad_length;
    parameters.ulTagBits = 128;
    CK_MECHANISM mechanism = {CKM_AES_GCM, &parameters, sizeof(parameters)};
    CK_ULONG output_length = encrypt ? input_length + 16 : input_length;
    CK_RV rv;
    if (encrypt) {
        if ((rv = p11->functions->C_EncryptInit(p11->session, &mechanism, p11->key)) != CKR_OK) { fail(error, error_size, "C_EncryptInit failed", rv); return -1; }
        rv = p11->functions->C_Encrypt(p11->session, (CK_BYTE_PTR)input, input_length, output, &output_length);
        if (rv != CKR_OK) { fail(error, error_size, "C_Encrypt failed", rv); return -1; }
    } else {
        if ((rv = p11->functions->C_DecryptInit(p11->session, &mechanism, p11->key)) != CKR_OK) { fail(error, error_size, "C_DecryptInit failed", rv); return -1; }
        rv = p11->functions->C_Decrypt(p11->session, (CK_BYTE_PTR)input, input_length, output, &output_length);
        if (rv != CKR_OK) { fail(error, error_size, "C_Decrypt failed (forged or from another key)", rv); return -1; }
    }
    return (long)output_length;
}
