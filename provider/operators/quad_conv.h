// The quad-packed direct convolution both SparseQConv and SparseConvInteger run: attributes and
// weights read alike, a plan per input size (operators/conv_geometry.h), and every image's
// interleaved planes (kernels/u8s8-spconv) multiplied tile by tile in parallel, each task's
// int32 sums handed to the op's output stage.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/u8s8-spconv/planes.h"
#include "operators/conv_geometry.h"
#include "operators/op_support.h"
#include "operators/quad_tiles.h"
#include "operators/spmm_tiles.h"

namespace ortsparse {

// Output channels per task: their int32 sums for one tile stay within 16 KB of L1.
inline constexpr size_t kQuadConvChunkChannels = 64;

class QuadConv {
 public:
  // Reads attributes C, N, format (quad4) and the window's, and the packed weights; throws
  // std::invalid_argument for a malformed node.
  explicit QuadConv(const Ort::ConstKernelInfo& info);

  int64_t n() const { return n_; }
  const QuadPackedWeights& packed() const { return packed_; }
  const QuadMicrokernels& microkernels() const { return *microkernels_; }

  // Y's shape for X of x_shape, and the plan for X's size; throws std::invalid_argument for an X
  // the op cannot take.
  std::shared_ptr<const DirectConvPlan> PlanFor(const std::vector<int64_t>& x_shape,
                                                std::vector<int64_t>* y_shape) const;

  // Convolves `images` images of x (C x H x W bytes each, the plan's size), every byte XORed with
  // `flip` and the padding holding `pad` (kernels::QuadPlanesSource), and calls finish(tile) once
  // per task, for the op to multiply the tile (QuadConvTile) and write its outputs.
  template <typename Finish>
  void Run(Ort::KernelContext& context, const DirectConvPlan& plan, const uint8_t* x,
           size_t images, uint8_t flip, uint8_t pad, const Finish& finish) const;

 private:
  std::shared_ptr<const DirectConvPlan> BuildPlan(int64_t in_height, int64_t in_width) const;

  int64_t channels_ = 0;
  int64_t channel_quads_ = 0;  // ceil(C / 4)
  int64_t n_ = 0;
  ConvWindow window_;
  QuadPackedWeights packed_;
  const QuadMicrokernels* microkernels_ = nullptr;
  DirectConvPlans plans_;
};

// One task's part of a QuadConv: grid positions [first, end) of image `image` (counted from the
// call's first) by output channels [channel_begin, channel_begin + channels).
struct QuadConvTile {
  const QuadMicrokernels* mk;
  const uint8_t* base;  // the image's planes at grid position `first`
  const kernels::QuadWeights* weights;
  size_t image, first, end, channel_begin, channels;

  // Calls store(acc, acc_stride) with the tile's sums: acc[c * acc_stride + (position - first)].
  template <typename Store>
  void WithSums(Store&& store) const {
    alignas(64) int32_t acc[kQuadConvChunkChannels * kMaxPanelRows];
    mk->TileFor(end - first)(base, *weights, channel_begin, channel_begin + channels, acc);
    store(static_cast<const int32_t*>(acc), mk->panel_rows);
  }
};

// Planes of all the images of one ParallelFor (a wave) exist at once; waves of as many images as
// fit this many bytes bound the scratch memory of large batches (one image per wave at least).
inline constexpr size_t kMaxWavePlaneBytes = size_t{32} << 20;
// A task's share of packing an image's planes: whole channel quads, about this many bytes.
inline constexpr size_t kPackPartBytes = size_t{16} << 10;

template <typename Finish>
void QuadConv::Run(Ort::KernelContext& context, const DirectConvPlan& plan, const uint8_t* x,
                   size_t images, uint8_t flip, uint8_t pad, const Finish& finish) const {
  // Everything one wave's parallel tasks read; tasks write disjoint parts of Y and planes.
  struct Job {
    const QuadMicrokernels* mk;
    kernels::QuadWeights weights;
    const DirectConvPlan* plan;
    kernels::QuadPlanesSource source;  // image: the wave's first
    size_t first_image;                // the wave's
    size_t n;
    size_t image_bytes;  // C * H * W
    size_t tiles_per_image;
    size_t chunks;
    size_t quads_per_pack_part;
    uint32_t* planes;  // one image's planes every planes_stride elements
    size_t planes_stride;
    PackProgress* pack_progress;  // one per image of the wave
    const Finish* finish;
  };
  // Task (image, tile of grid positions, channel chunk) of a wave.
  auto task = [](void* data, size_t index) {
    const Job& job = *static_cast<const Job*>(data);
    const QuadMicrokernels& mk = *job.mk;
    const size_t tile_of_wave = index / job.chunks;
    const size_t chunk = index % job.chunks;
    const size_t image = tile_of_wave / job.tiles_per_image;
    const size_t tile = tile_of_wave % job.tiles_per_image;
    const size_t first = tile * mk.panel_rows;
    const size_t end = std::min(first + mk.panel_rows, job.plan->grid_positions);

    uint32_t* image_planes = job.planes + image * job.planes_stride;
    kernels::QuadPlanesSource image_source = job.source;
    image_source.image += image * job.image_bytes;
    PackOnce(job.pack_progress[image], job.plan->planes.channels, job.quads_per_pack_part,
             [&](size_t quad_begin, size_t quad_end) {
               mk.pack_quad_planes(image_source, job.plan->planes, quad_begin, quad_end,
                                   image_planes);
             });
    const uint8_t* tile_base =
        reinterpret_cast<const uint8_t*>(image_planes) + first * sizeof(uint32_t);

    const size_t channel_begin = chunk * kQuadConvChunkChannels;
    const QuadConvTile quad_tile = {&mk,
                                    tile_base,
                                    &job.weights,
                                    job.first_image + image,
                                    first,
                                    end,
                                    channel_begin,
                                    std::min(kQuadConvChunkChannels, job.n - channel_begin)};
    (*job.finish)(quad_tile);
  };

  const QuadMicrokernels& mk = *microkernels_;
  Job job{};
  job.mk = microkernels_;
  job.weights = packed_.View(plan.offsets);
  job.plan = &plan;
  job.n = static_cast<size_t>(n_);
  job.image_bytes = static_cast<size_t>(channels_) * static_cast<size_t>(plan.in_height) *
                    static_cast<size_t>(plan.in_width);
  job.tiles_per_image = CeilDiv(plan.grid_positions, mk.panel_rows);
  job.chunks = CeilDiv(job.n, kQuadConvChunkChannels);
  const size_t quad_plane_bytes = plan.planes.ChannelElements() * sizeof(uint32_t);
  job.quads_per_pack_part = std::max<size_t>(1, kPackPartBytes / quad_plane_bytes);
  job.finish = &finish;

  // Each image's planes start on a cache line.
  job.planes_stride = RoundUp(plan.planes.total_elements, 64 / sizeof(uint32_t));
  const size_t wave_images = std::clamp<size_t>(
      kMaxWavePlaneBytes / (job.planes_stride * sizeof(uint32_t)), 1, images);
  const ScratchBuffer planes(context, wave_images * job.planes_stride);
  job.planes = reinterpret_cast<uint32_t*>(planes.data());
  job.source = {nullptr, static_cast<size_t>(channels_), flip, pad};
  for (size_t first = 0; first < images; first += wave_images) {
    const size_t count = std::min(wave_images, images - first);
    job.source.image = x + first * job.image_bytes;
    job.first_image = first;
    const std::unique_ptr<PackProgress[]> pack_progress(new PackProgress[count]);
    job.pack_progress = pack_progress.get();
    context.ParallelFor(task, count * job.tiles_per_image * job.chunks, 0, &job);
  }
}

}  // namespace ortsparse
