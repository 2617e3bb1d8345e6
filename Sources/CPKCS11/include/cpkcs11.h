#ifndef CPKCS11_H
#define CPKCS11_H

#include <stddef.h>

/// An open PKCS#11 session on one token, logged in, with the sealing key found (or made) by label.
typedef struct ikp_p11 ikp_p11;

/// Loads the module, finds the token by label, logs in as user and finds the AES key `key_label`
/// (generating a non-extractable AES-256 key on the token if there is none). NULL on failure, with a
/// message in `error` (up to `error_size` octets).
ikp_p11 *ikp_p11_open(const char *module_path, const char *token_label, const char *pin, const char *key_label,
                      char *error, size_t error_size);

/// Logs out, closes the session, finalizes and unloads the module.
void ikp_p11_close(ikp_p11 *p11);

/// AES-GCM (CKM_AES_GCM, 128-bit tag) inside the token. `output` holds at least `input_length + 16`
/// octets for encryption, `input_length` for decryption. Returns the output length, or -1 with a
/// message in `error` (the token gone, a forged box).
long ikp_p11_gcm(ikp_p11 *p11, int encrypt, const unsigned char *iv, size_t iv_length, const unsigned char *aad, size_t aad_length,
                 const unsigned char *input, size_t input_length, unsigned char *output, char *error, size_t error_size);

#endif
