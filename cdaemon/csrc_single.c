// Compiles ../csrc/single.c into this package: cgo builds only the C files
// in the package directory, and the C core must stay one implementation.
#include "../csrc/single.c"
