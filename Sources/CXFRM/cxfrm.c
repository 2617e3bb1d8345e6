// The target exists for its header: the structures of <linux/xfrm.h> for Swift. SwiftPM wants a source file.
#include "cxfrm.h"
