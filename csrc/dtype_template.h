/*
 * dtype_template.h: compiles the kernel file named by DTYPE_TEMPLATE once for
 * float (suffix _f32) and once for double (_f64). The file keeps its template
 * body under #ifndef REAL ... #else; DTYPE_F32 tells the body which copy it is. No include
 * guard: every kernel file includes this once.
 */
#define DTYPE_F32 1
#define REAL float
#define SFX(name) name##_f32
#include DTYPE_TEMPLATE
#undef REAL
#undef SFX
#undef GEMM
#undef DTYPE_F32

#define DTYPE_F32 0
#define REAL double
#define SFX(name) name##_f64
#include DTYPE_TEMPLATE
#undef REAL
#undef SFX
#undef GEMM
#undef DTYPE_F32
#undef DTYPE_TEMPLATE
