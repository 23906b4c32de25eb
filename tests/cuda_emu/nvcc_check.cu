// Compiled by nvcc only (the ctest cuda_emu:nvcc_compiles_emu_test_kernels): proves that the
// kernels and launchers the emulator runs are also valid CUDA, macros included. Never linked.
#include "emu_test_kernels.cuh"

namespace et = normlab::emu_test;

// Instantiates every launcher (and so every kernel) once.
void instantiate_emu_test_launchers(float* f, double* d, int* i, unsigned* u,
                                    et::AtomicTotals* totals) {
  et::launch_block_sum_shared<256>(f, f, 1);
  et::launch_warp_sums_down(f, f, 1);
  et::launch_warp_sums_down(d, d, 1);
  et::launch_segment_sums_xor(f, f, 16);
  et::launch_block_sum_two_stage(f, f, 1, 1, 32);
  et::launch_warp_votes(f, u, i, i, 32);
  et::launch_reverse_tiles(f, f, 1, 32);
  et::launch_affine_grid_stride(f, f, 1.0f, 0.0f, 1, 1, 32);
  et::launch_global_coordinates(i, i, dim3(1, 1, 1), dim3(1, 1, 1));
  et::launch_atomic_totals(totals, 1, 32);
  et::launch_shuffle_sources(i, 0, 0, 32);
  et::launch_swap_pairs_after_exit(i);
  et::launch_broadcast_from_two_branches(i);
  et::launch_take_tickets(i, i, 1, 32);
  cudaFuncSetAttribute(et::fill_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       64 * 1024);
  et::launch_fill_dynamic_shared(f, 1);
  et::launch_cuda_maths(f, f, i, 32);
  et::launch_block_sum_missing_loop_sync<256>(f, f, 1);
  et::launch_rotate_tiles_missing_sync(f, f, 1);
  et::launch_barrier_in_divergent_branch(f);
  et::launch_barriers_in_both_branches(f);
  et::launch_shuffle_mask_misses_caller(f);
  et::launch_halves_call_different_collectives(f);
  et::launch_sum_unwritten_static_shared(f);
  et::launch_sum_unwritten_dynamic_shared(f);
  et::launch_sum_unwritten_dynamic_shared(d);
  et::launch_syncwarp_against_barrier(f);
}
