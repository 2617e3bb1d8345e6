// Declarations only: LLVMFuzzerRunDriver comes from the libFuzzer runtime linked by -sanitize=fuzzer.
#include "libfuzzer_driver.h"
