#include "operators/sparse_conv.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <stdexcept>
#include <thread>
#include <utility>

namespace ortsparse {
namespace {

// Planes of all the images of one ParallelFor (a wave) exist at once; waves of as many images as
// fit this many floats bound the scratch memory of large batches (one image per wave at least).
constexpr size_t kMaxWavePlaneFloats = size_t{8} << 20;
// A task's share of packing an image's planes: whole channels, about this many floats.
constexpr size_t kPackPartFloats = size_t{32} << 10;
// Packed planes, and each image's planes, start on a cache line.
constexpr size_t kCacheLineFloats = 64 / sizeof(float);

using kernels::compiled_limits::kMinCompiledTiles;  // see CompileFor
using kernels::compiled_limits::kMinFinishingReuse;
// A compiled task multiplies this many consecutive tiles of an image by one block of channels:
// each piece of code then runs over all of their vectors once fetched, and each input plane is
// read in longer runs, which the hardware prefetchers follow.
constexpr size_t kCompiledTilesPerTask = 4;
constexpr size_t kCompiledAccStride = kCompiledTilesPerTask * kMaxPanelRows;

// Compiled plans whose planes would take more than this many floats per image pack them in bands
// of output rows, each packed by the task that multiplies it, into its thread's buffer, where it
// stays in L2 from packing to multiplying: the whole image's planes, packed first, went out to L3
// and came back (YOLOv5s-like at 80%: the 320x320 and 160x160 layers' planes, 3-13 MB, made the
// network 4-5% slower than bands of at most kBandPlanesFloats).
constexpr size_t kMinBandedPlanesFloats = size_t{256} << 10;
constexpr size_t kBandPlanesFloats = size_t{192} << 10;
// Bands of about 1/kTargetBandsPerImage of the output rows, for threads to share; an image of
// fewer than kMinBandsPerImage bands keeps the whole image's planes, whose tasks also split the
// blocks of channels.
constexpr size_t kTargetBandsPerImage = 16;
constexpr size_t kMinBandsPerImage = 4;
// A run of a node with a pointwise prologue is split into at least this many tasks per core of
// the machine (ORT tells a kernel nothing of its pool's threads), where its bands allow: each task
// reuses the halo rows within its run of bands, and computes them again at its start. Fewer,
// longer runs compute fewer halos but balance worse between threads whose speed varies (on the
// 2-core VM, YOLOv5s-like's fused bottlenecks at batch 1 were no slower with 8 than with 2, in
// timings too noisy to rank them closer).
constexpr size_t kPrologueTasksPerCore = 8;

static_assert(kMaxXParts <= kernels::kMaxInputBases, "compiled code reads each part of X in place");

constexpr int64_t kMaxAttribute = std::numeric_limits<int32_t>::max();
// StoreChannelsLast transposes accumulators in blocks of kStoreChannels channels by as many
// positions, reading past those it stores: a compiled task's have rows for whole blocks.
constexpr size_t kCompiledAccRows =
    RoundUp(kernels::CompiledConv::kMaxBlockChannels, kStoreChannels);

// Everything one wave's parallel tasks read; tasks write disjoint parts of Y and planes.
struct ConvJob {
  const SpmmMicrokernels* microkernels;
  TileKernels<int32_t> tile_kernels;
  const TileWeights* tile_weights;
  const DirectConvPlan* plan;
  kernels::OffsetSegments segments;
  kernels::Epilogue epilogue;
  // X's parts, each at the wave's first image, and where its channels start in X.
  struct XPart {
    const float* data;
    size_t first_channel, channels;
  };
  XPart x_parts[kMaxXParts];
  size_t x_part_count;
  size_t channel_floats;  // H * W
  const float* bias;
  const float* residual;  // at the wave's first image, or null
  const OutputAffine* affine;  // or null
  float* y;               // at the wave's first image
  // Y's channels: N, or S with output_split S, y_2 (at the wave's first image) taking the rest.
  size_t y_channels;
  float* y_2;
  size_t n;
  size_t pixels;          // OH * OW
  size_t tiles_per_image;
  size_t channels_per_pack_part;
  float* planes;          // one image's planes every planes_stride floats, unless in place
  size_t planes_stride;
  PackProgress* pack_progress;  // one per image of the wave
  // When Y's channels are the grid's runs and the family and epilogue allow: the kernels that
  // run the last block of input features and finish Y themselves, with no output stage.
  const DirectFinishFn* finishers;
  // Channels per group when Y holds each group's channels last, else 0 (NCHW).
  size_t group_channels;
  // The depthwise convolution whose output the planes hold, computed from X (channel_floats of
  // each channel) instead of packing X; null without one.
  const DepthwisePrologue* depthwise;
  // Likewise the sparse 1x1 convolution whose output the planes hold; its plans are in bands.
  const PointwisePrologue* pointwise;

  // Bands of output rows per image that one task takes, one after the other, for plans in bands.
  size_t bands_per_task;

  // The bands of task `task` of a plan in bands: image `image`'s [first, end).
  struct BandRange {
    size_t image, first, end;
  };
  BandRange BandsOf(size_t task) const {
    const size_t bands = CeilDiv(plan->out_height, plan->band_rows);
    const size_t tasks_per_image = CeilDiv(bands, bands_per_task);
    const size_t first = task % tasks_per_image * bands_per_task;
    return {task / tasks_per_image, first, std::min(bands, first + bands_per_task)};
  }

  // Tile `tile` of an image: grid positions [first, end), computed from `start` on, which is
  // earlier than `first` for the last tile read in place (see DirectConvPlan::last_tile_start).
  struct TileRows {
    size_t first, end, start;
  };
  TileRows RowsOf(size_t tile) const {
    const size_t panel_rows = microkernels->panel_rows;
    const size_t first = tile * panel_rows;
    const size_t end = std::min(first + panel_rows, plan->grid_positions);
    return {first, end, tile + 1 == tiles_per_image ? plan->last_tile_start : first};
  }

  // Channel slices (tile chunks or compiled blocks, of `slices`) that one task multiplies: all of
  // them when Y holds groups of channels last, whose lines then mix several slices' channels, so
  // that two threads never write one line at once; else one.
  size_t SlicesPerTask(size_t slices) const { return group_channels != 0 ? slices : 1; }

  // Packs the planes of channels [channel_begin, channel_end) of an image, from each part of X
  // that holds some of them, with rows from first_plane_row on; `follows`: the thread's previous
  // call packed the band before (PointwisePrologue::WritePlanes).
  void PackPlanes(size_t image, size_t first_plane_row, size_t channel_begin, size_t channel_end,
                  float* image_planes, bool follows = false) const {
    for (size_t p = 0; p < x_part_count; ++p) {
      const XPart& part = x_parts[p];
      const size_t begin = std::max(channel_begin, part.first_channel);
      const size_t end = std::min(channel_end, part.first_channel + part.channels);
      if (begin >= end) continue;
      const float* channels =
          part.data + (image * part.channels + begin - part.first_channel) * channel_floats;
      if (pointwise != nullptr) {
        // X is one part, all of whose channels every channel of the planes reads.
        pointwise->WritePlanes(plan->pointwise_offsets, *microkernels, channels,
                               static_cast<size_t>(plan->in_height),
                               static_cast<size_t>(plan->in_width), plan->planes, first_plane_row,
                               follows, image_planes);
      } else if (depthwise != nullptr) {
        depthwise->WritePlanes(*plan->depthwise, *microkernels, channels, plan->planes,
                               first_plane_row, begin, end, image_planes);
      } else {
        microkernels->pack_input_planes(channels, plan->planes, first_plane_row, begin, end,
                                        image_planes);
      }
    }
  }

  const float* ImageOfPart(size_t part, size_t image) const {
    return x_parts[part].data + image * x_parts[part].channels * channel_floats;
  }

  // The planes of an image, packed once by the tasks that read them, or X read in place (then
  // only one part of it, for the tile kernels).
  const float* PlanesOf(size_t image) const {
    if (plan->in_place) return ImageOfPart(0, image);
    float* image_planes = planes + image * planes_stride;
    PackOnce(pack_progress[image], plan->planes.channels, channels_per_pack_part,
             [&](size_t channel_begin, size_t channel_end) {
               PackPlanes(image, 0, channel_begin, channel_end, image_planes);
             });
    return image_planes;
  }

  // Finishes grid positions [first, first + rows) of the accumulators of channels
  // [chunk_begin, + chunk_channels) into Y: the parts of them that are output pixels, one output
  // row at a time unless the grid is as wide as Y. Grid position 0 is Y's pixel first_pixel (not
  // 0 in a band of output rows).
  void Store(const float* acc, size_t acc_stride, size_t image, size_t first_pixel, size_t first,
             size_t rows, size_t chunk_begin, size_t chunk_channels) const {
    if (group_channels != 0) {
      StoreChannelsLast(acc, acc_stride, image, first_pixel, first, rows, chunk_begin,
                        chunk_channels);
      return;
    }
    // A chunk may straddle Y's last channel: the channels past it go to y_2.
    const size_t chunk_end = chunk_begin + chunk_channels;
    if (chunk_begin < y_channels) {
      StoreNchw(acc, acc_stride, image, first_pixel, first, rows, chunk_begin,
                std::min(chunk_end, y_channels) - chunk_begin, y, y_channels, chunk_begin);
    }
    if (chunk_end > y_channels) {
      const size_t begin = std::max(chunk_begin, y_channels);
      StoreNchw(acc + (begin - chunk_begin) * acc_stride, acc_stride, image, first_pixel, first,
                rows, begin, chunk_end - begin, y_2, n - y_channels, begin - y_channels);
    }
  }

  // Store of channels [chunk_begin, + chunk_channels) into `out_y`, NCHW with out_channels
  // channels, from its channel out_begin on.
  void StoreNchw(const float* acc, size_t acc_stride, size_t image, size_t first_pixel,
                 size_t first, size_t rows, size_t chunk_begin, size_t chunk_channels,
                 float* out_y, size_t out_channels, size_t out_begin) const {
    const SpmmMicrokernels& mk = *microkernels;
    const size_t image_offset = (image * out_channels + out_begin) * pixels + first_pixel;
    plan->ForEachOutputRun(first, first + rows, [&](size_t position, size_t length,
                                                    size_t pixel) {
      const size_t offset = image_offset + pixel;
      const kernels::OutputBlock out =
          WithAffine({out_y + offset, residual != nullptr ? residual + offset : nullptr,
                      bias != nullptr ? bias + chunk_begin : nullptr, pixels},
                     affine, chunk_begin);
      mk.store_channel_rows(acc + (position - first), acc_stride, length, chunk_channels, out,
                            epilogue);
    });
  }

  // Store for Y of [B, A, OH, OW, group_channels]: each group's channels are Y's rows there, so
  // the output stage transposes the accumulators as SparseGemm's does, one stretch of channels
  // of one group at a time. It reads acc up to whole vectors past `rows` and `chunk_channels`.
  void StoreChannelsLast(const float* acc, size_t acc_stride, size_t image, size_t first_pixel,
                         size_t first, size_t rows, size_t chunk_begin,
                         size_t chunk_channels) const {
    const SpmmMicrokernels& mk = *microkernels;
    const size_t groups = n / group_channels;
    const size_t chunk_end = chunk_begin + chunk_channels;
    plan->ForEachOutputRun(first, first + rows, [&](size_t position, size_t length,
                                                    size_t pixel) {
      for (size_t c0 = chunk_begin; c0 < chunk_end;) {
        const size_t group = c0 / group_channels;
        const size_t end =
            std::min({chunk_end, (group + 1) * group_channels, c0 + kStoreChannels});
        const kernels::OutputBlock out = WithAffine(
            {y + ((image * groups + group) * pixels + first_pixel + pixel) * group_channels +
                 c0 % group_channels,
             nullptr, bias != nullptr ? bias + c0 : nullptr, group_channels},
            affine, c0);
        mk.store_transposed(acc + (c0 - chunk_begin) * acc_stride + (position - first),
                            acc_stride, length, end - c0, out, epilogue);
        c0 = end;
      }
    });
  }
};

// Multiplies grid positions [start, end) of `planes` by channel chunk `chunk` and stores those
// from `first` on into Y, whose pixel first_pixel is grid position 0.
void MultiplyAndStore(const ConvJob& job, const float* planes, size_t image, size_t first_pixel,
                      size_t start, size_t first, size_t end, size_t chunk) {
  const SpmmMicrokernels& mk = *job.microkernels;
  const TileWeights& tw = *job.tile_weights;
  alignas(64) float acc[kMaxChunkChannels * kMaxPanelRows + kStoreChannels];
  MultiplyTile(mk, job.tile_kernels, tw, job.segments, planes + start, 0, end - start, chunk, acc);
  job.Store(acc + (first - start), mk.panel_rows, image, first_pixel, first, end - first,
            tw.ChunkBegin(chunk), tw.ChunkChannels(chunk, job.n));
}

// Tile `tile_of_wave` of a wave by channel chunk `chunk`.
void MultiplyTileChunk(const ConvJob& job, size_t tile_of_wave, size_t chunk) {
  const SpmmMicrokernels& mk = *job.microkernels;
  const TileWeights& tw = *job.tile_weights;
  const size_t image = tile_of_wave / job.tiles_per_image;
  const auto [first, end, start] = job.RowsOf(tile_of_wave % job.tiles_per_image);
  const float* planes = job.PlanesOf(image);

  // The last tile read in place starts early, over the previous tile's positions, which the
  // output stage then leaves alone; a finishing kernel would write them again, racing with that
  // tile's task.
  if (job.finishers == nullptr || start != first) {
    MultiplyAndStore(job, planes, image, 0, start, first, end, chunk);
    return;
  }
  alignas(64) float acc[kMaxChunkChannels * kMaxPanelRows + kStoreChannels];
  const size_t chunk_begin = tw.ChunkBegin(chunk);
  const size_t rows = end - start;
  const size_t last_block = tw.k_blocks - 1;
  MultiplyTile(mk, job.tile_kernels, tw, job.segments, planes + start, 0, rows, chunk, acc,
               last_block);
  // Grid positions are pixels here.
  const size_t offset = (image * job.n + chunk_begin) * job.pixels + start;
  const size_t tail = rows % mk.vector_rows;
  const kernels::FinishedChannels out = {
      job.y + offset,
      job.residual != nullptr ? job.residual + offset : nullptr,
      job.bias != nullptr ? job.bias + chunk_begin : nullptr,
      job.pixels,
      static_cast<uint16_t>(tail == 0 ? 0xffff : (1u << tail) - 1),
      job.epilogue};
  const size_t pass = chunk * tw.k_blocks + last_block;
  job.finishers[CeilDiv(rows, mk.vector_rows) - 1](planes + start, job.segments,
                                                   tw.pass_offsets[pass],
                                                   tw.pass_offsets[pass + 1], acc, out);
}

// Task (image, tile of grid positions, channel chunks) of a wave.
void ConvTileTask(void* data, size_t task) {
  const ConvJob& job = *static_cast<const ConvJob*>(data);
  const size_t chunks = job.tile_weights->chunks;
  const size_t chunks_per_task = job.SlicesPerTask(chunks);
  const size_t tasks_per_tile = chunks / chunks_per_task;
  const size_t first_chunk = task % tasks_per_tile * chunks_per_task;
  for (size_t chunk = first_chunk; chunk < first_chunk + chunks_per_task; ++chunk) {
    MultiplyTileChunk(job, task / tasks_per_tile, chunk);
  }
}

// Multiplies tiles `rows` (up to kCompiledTilesPerTask) of an image's input by compiled blocks
// [first_block, end_block) and stores them into Y, whose pixel first_pixel is grid position 0.
// The input is its planes, or each part of X read in place (`bases`, kMaxInputBases of them).
void MultiplyCompiledTiles(const ConvJob& job, const float* const* bases, size_t image,
                           size_t first_pixel, const ConvJob::TileRows* rows, size_t tiles,
                           size_t first_block, size_t end_block) {
  const SpmmMicrokernels& mk = *job.microkernels;
  const kernels::CompiledConv& compiled = *job.plan->compiled;
  alignas(64) float acc[kCompiledAccRows * kCompiledAccStride];
  kernels::CompiledRun runs[kCompiledTilesPerTask];
  for (size_t t = 0; t < tiles; ++t) {
    for (size_t b = 0; b < kernels::kMaxInputBases; ++b) {
      runs[t].bases[b] = bases[b] + rows[t].start;
    }
    runs[t].vectors = CeilDiv(rows[t].end - rows[t].start, mk.vector_rows);
    runs[t].acc = acc + t * mk.panel_rows;
  }
  for (size_t block = first_block; block < end_block; ++block) {
    compiled.MultiplyBlock(block, runs, tiles);
    const kernels::CompiledConv::BlockChannels channels = compiled.Block(block);
    // Tiles whose sums lie one after the other in acc (all but a last tile started early) are
    // stored at once, in runs of each channel as long as the group's.
    for (size_t t = 0; t < tiles;) {
      size_t end = t + 1;
      while (end < tiles && rows[end].start == rows[end - 1].end &&
             rows[end].start == rows[end].first) {
        ++end;
      }
      job.Store(runs[t].acc + (rows[t].first - rows[t].start), kCompiledAccStride, image,
                first_pixel, rows[t].first, rows[end - 1].end - rows[t].first, channels.begin,
                channels.count);
      t = end;
    }
  }
}

// Task (image, group of kCompiledTilesPerTask tiles, blocks of channels) of a wave, for a plan
// whose weights are compiled for the whole image's planes.
void CompiledConvTask(void* data, size_t task) {
  const ConvJob& job = *static_cast<const ConvJob*>(data);
  const size_t blocks = job.plan->compiled->BlockCount();
  const size_t blocks_per_task = job.SlicesPerTask(blocks);
  const size_t tasks_per_group = blocks / blocks_per_task;
  const size_t first_block = task % tasks_per_group * blocks_per_task;
  const size_t group_of_wave = task / tasks_per_group;
  const size_t groups_per_image = CeilDiv(job.tiles_per_image, kCompiledTilesPerTask);
  const size_t image = group_of_wave / groups_per_image;
  const size_t first_tile = group_of_wave % groups_per_image * kCompiledTilesPerTask;
  const size_t tiles = std::min(kCompiledTilesPerTask, job.tiles_per_image - first_tile);
  ConvJob::TileRows rows[kCompiledTilesPerTask];
  for (size_t t = 0; t < tiles; ++t) rows[t] = job.RowsOf(first_tile + t);
  const float* bases[kernels::kMaxInputBases];
  std::fill(bases, bases + kernels::kMaxInputBases, job.PlanesOf(image));
  if (job.plan->in_place) {
    // A part without channels has no feature reading it, and maybe no data to point at.
    for (size_t part = 1; part < job.x_part_count; ++part) {
      if (job.x_parts[part].channels != 0) bases[part] = job.ImageOfPart(part, image);
    }
  }
  MultiplyCompiledTiles(job, bases, image, 0, rows, tiles, first_block,
                        first_block + blocks_per_task);
}

// One band's planes in this thread's buffer, which the next band it packs overwrites while the
// lines are still in its L2 (about kBandPlanesFloats floats at most).
struct BandPlanesTag;
float* ThreadBandPlanes(size_t floats) { return ThreadLocalFloats<BandPlanesTag>(floats); }

// Band `band` of image `image` for a plan whose planes are laid out in bands, compiled: packs the
// band's planes, then multiplies them by every block of channels, a group of tiles at a time.
void CompiledBand(const ConvJob& job, size_t image, size_t band, bool follows) {
  const DirectConvPlan& plan = *job.plan;
  const size_t panel_rows = job.microkernels->panel_rows;
  const size_t first_row = band * plan.band_rows;
  float* planes = ThreadBandPlanes(plan.planes.total_elements);
  job.PackPlanes(image, first_row, 0, plan.planes.channels, planes, follows);
  const float* bases[kernels::kMaxInputBases];
  std::fill(bases, bases + kernels::kMaxInputBases, planes);

  const size_t band_rows = std::min(plan.band_rows, plan.out_height - first_row);
  const size_t grid_positions = (band_rows - 1) * plan.planes.plane_width + plan.out_width;
  const size_t tiles = CeilDiv(grid_positions, panel_rows);
  const size_t blocks = plan.compiled->BlockCount();
  for (size_t first_tile = 0; first_tile < tiles; first_tile += kCompiledTilesPerTask) {
    const size_t group_tiles = std::min(kCompiledTilesPerTask, tiles - first_tile);
    ConvJob::TileRows rows[kCompiledTilesPerTask];
    for (size_t t = 0; t < group_tiles; ++t) {
      const size_t first = (first_tile + t) * panel_rows;
      rows[t] = {first, std::min(first + panel_rows, grid_positions), first};
    }
    MultiplyCompiledTiles(job, bases, image, first_row * plan.out_width, rows, group_tiles, 0,
                          blocks);
  }
}

// The same for the tile kernels: each tile of the band's planes by every chunk of channels.
void TileBand(const ConvJob& job, size_t image, size_t band, bool follows) {
  const DirectConvPlan& plan = *job.plan;
  const SpmmMicrokernels& mk = *job.microkernels;
  const size_t first_row = band * plan.band_rows;
  float* planes = ThreadBandPlanes(plan.planes.total_elements);
  job.PackPlanes(image, first_row, 0, plan.planes.channels, planes, follows);

  const size_t band_rows = std::min(plan.band_rows, plan.out_height - first_row);
  const size_t grid_positions = (band_rows - 1) * plan.planes.plane_width + plan.out_width;
  for (size_t first = 0; first < grid_positions; first += mk.panel_rows) {
    const size_t end = std::min(first + mk.panel_rows, grid_positions);
    for (size_t chunk = 0; chunk < job.tile_weights->chunks; ++chunk) {
      MultiplyAndStore(job, planes, image, first_row * plan.out_width, first, first, end, chunk);
    }
  }
}

// Task (image, run of bands of output rows) for a plan in bands, one band after the other.
template <void (*kBand)(const ConvJob&, size_t, size_t, bool)>
void BandTask(void* data, size_t task) {
  const ConvJob& job = *static_cast<const ConvJob*>(data);
  const ConvJob::BandRange range = job.BandsOf(task);
  for (size_t band = range.first; band < range.end; ++band) {
    kBand(job, range.image, band, band != range.first);
  }
}

// What bounds a band's output rows for planes laid out like `whole`'s (the whole image's).
struct BandBounds {
  size_t reach;         // plane rows past a band's output rows that its kernel reads
  size_t fitting_rows;  // plane rows of kBandPlanesFloats
  size_t task_rows;     // output rows a compiled task multiplies at once
  size_t target_rows;   // 1/kTargetBandsPerImage of the image
};

BandBounds BoundsOfBands(const DirectConvPlan& whole, size_t panel_rows) {
  const kernels::InputPlanes& planes = whole.planes;
  const size_t row_floats = planes.channels * planes.row_phase_count *
                            planes.column_phase_count * planes.plane_width;
  return {planes.plane_height - whole.out_height, kBandPlanesFloats / row_floats,
          CeilDiv(kCompiledTilesPerTask * panel_rows, planes.plane_width),
          CeilDiv(whole.out_height, kTargetBandsPerImage)};
}

// Output rows per band for a pointwise prologue's planes, which are always in bands: about
// 1/kTargetBandsPerImage of the image, at least a compiled task's rows, and planes of at most
// kBandPlanesFloats (or a single row).
size_t PrologueBandRows(const DirectConvPlan& whole, size_t panel_rows) {
  const BandBounds bounds = BoundsOfBands(whole, panel_rows);
  const size_t most_rows =
      bounds.fitting_rows > bounds.reach ? bounds.fitting_rows - bounds.reach : 1;
  return std::min({std::max(bounds.target_rows, bounds.task_rows), most_rows, whole.out_height});
}

// Output rows per band for compiled code on `whole`, the whole image's planes; 0 to keep those:
// X itself, or small enough to stay in L2, or where a band that fits kBandPlanesFloats holds
// fewer grid positions than a task multiplies at once on the whole image's planes, so that each
// piece of code would run over fewer vectors per fetch.
size_t BandRowsFor(const DirectConvPlan& whole, size_t panel_rows) {
  if (whole.in_place || whole.planes.total_elements <= kMinBandedPlanesFloats) return 0;
  const BandBounds bounds = BoundsOfBands(whole, panel_rows);
  if (bounds.fitting_rows < bounds.reach + bounds.task_rows) return 0;
  const size_t rows =
      std::clamp(bounds.target_rows, bounds.task_rows, bounds.fitting_rows - bounds.reach);
  return CeilDiv(whole.out_height, rows) < kMinBandsPerImage ? 0 : rows;
}

}  // namespace

SparseConvKernel::SparseConvKernel(const Ort::ConstKernelInfo& info) {
  matrix_ = ReadSparseMatrixAttributes(info);
  threading_ = ReadThreading(info);
  ReadWindow(info);
  ReadOutputChannelGroups(info);
  ReadOutputSplit(info);
  CountXParts(info);
  depthwise_ = DepthwisePrologue::Read(info, channels_, window_);
  if (depthwise_.has_value() && x_parts_ != 1) {
    throw std::invalid_argument("a depthwise prologue reads X in one part");
  }
  PackedWeights packed = ReadPackedWeights(info, matrix_);
  constant_bias_ = ReadConstantBias(info, matrix_.n);
  output_affine_ = ReadOutputAffine(info, matrix_.n);
  microkernels_ = &SelectMicrokernels();
  pointwise_ = PointwisePrologue::Read(info, channels_, *microkernels_);
  if (pointwise_.has_value() && (depthwise_.has_value() || x_parts_ != 1)) {
    throw std::invalid_argument("a pointwise prologue reads X in one part, with no depthwise "
                                "prologue");
  }
  tile_kernels_ = DirectTileKernelsFor(*microkernels_, matrix_.block_size);
  tile_weights_ = BuildTileWeights(packed, matrix_, *microkernels_, window_.TapsPerRun());
  verbose_ = FlagVariable("ORTSPARSE_VERBOSE", false);
  if (!FlagVariable("ORTSPARSE_JIT", true)) {
    not_compiled_ = "ORTSPARSE_JIT=0";
  } else if (microkernels_->compile_conv == nullptr) {
    not_compiled_ = "no compiled kernels in this ISA family";
  } else if (matrix_.block_size != 1) {
    // Their tile kernels share each input load among a group's four channels: on YOLOv5s-like
    // at 80% in 4-blocks, compiled code was 5-8% slower.
    not_compiled_ = "block4 weights";
  } else {
    weights_to_compile_ = std::move(packed);
  }
}

void SparseConvKernel::ReadWindow(const Ort::ConstKernelInfo& info) {
  window_ = ReadConvWindow(info);
  channels_ = ReadInputChannels(info);
  // K < 2^31 and every factor >= 1, so a product past K is detected before it can overflow.
  const int64_t taps = window_.Taps();
  if (taps > matrix_.k || channels_ * taps != matrix_.k) {
    throw std::invalid_argument("attribute K = " + std::to_string(matrix_.k) +
                                " must equal C * kH * kW = " + std::to_string(channels_) + " * " +
                                std::to_string(window_.height.kernel) + " * " +
                                std::to_string(window_.width.kernel));
  }
}

void SparseConvKernel::ReadOutputChannelGroups(const Ort::ConstKernelInfo& info) {
  const int64_t groups = IntAttribute(info, "output_channel_groups").value_or(0);
  if (groups < 0 || groups > matrix_.n || matrix_.n % std::max<int64_t>(groups, 1) != 0) {
    throw std::invalid_argument("attribute output_channel_groups = " + std::to_string(groups) +
                                " must be 0 (NCHW output) or divide N = " +
                                std::to_string(matrix_.n));
  }
  if (groups != 0 && NodeHasInput(info, kInputResidual)) {
    throw std::invalid_argument("a residual input cannot be added to output_channel_groups' "
                                "layout");
  }
  output_channel_groups_ = groups;
}

void SparseConvKernel::ReadOutputSplit(const Ort::ConstKernelInfo& info) {
  const int64_t split = IntAttribute(info, "output_split").value_or(0);
  const bool second_output = info.GetOutputCount() > 1 && !info.GetOutputName(1).empty();
  if (split < 0 || split >= matrix_.n || (split != 0) != second_output) {
    throw std::invalid_argument("attribute output_split = " + std::to_string(split) +
                                " must be in [1, N = " + std::to_string(matrix_.n) +
                                ") with a second output Y_2, or 0 without one");
  }
  if (split != 0 && output_channel_groups_ != 0) {
    throw std::invalid_argument("output_split and output_channel_groups cannot be combined");
  }
  if (split != 0 && NodeHasInput(info, kInputResidual)) {
    throw std::invalid_argument("a residual input cannot be added to an output split in two");
  }
  output_split_ = split;
}

void SparseConvKernel::CountXParts(const Ort::ConstKernelInfo& info) {
  const size_t inputs = info.GetInputCount();
  for (size_t index = kInputMoreXParts; index < inputs; ++index) {
    if (!NodeHasInput(info, index)) {
      throw std::invalid_argument("input " + std::to_string(index) + " (a part of X) is missing "
                                  "while a later part is given: X's parts must follow it without "
                                  "a gap");
    }
  }
  x_parts_ = 1 + std::max(inputs, kInputMoreXParts) - kInputMoreXParts;
}

std::vector<int64_t> SparseConvKernel::JoinedXShape(const Ort::KernelContext& context,
                                                    size_t part_channels[kMaxXParts]) const {
  const std::vector<int64_t> x_shape =
      context.GetInput(kInputX).GetTensorTypeAndShapeInfo().GetShape();
  if (x_parts_ == 1) {
    part_channels[0] = x_shape.size() == 4 ? static_cast<size_t>(x_shape[1]) : 0;
    return x_shape;
  }
  if (x_shape.size() != 4) {
    throw std::invalid_argument("X must have rank 4 (NCHW), got shape " + ShapeString(x_shape));
  }
  std::vector<int64_t> joined = x_shape;
  part_channels[0] = static_cast<size_t>(x_shape[1]);
  for (size_t p = 1; p < x_parts_; ++p) {
    const std::vector<int64_t> shape =
        context.GetInput(kInputMoreXParts + p - 1).GetTensorTypeAndShapeInfo().GetShape();
    if (shape.size() != 4 || shape[0] != joined[0] || shape[2] != joined[2] ||
        shape[3] != joined[3]) {
      throw std::invalid_argument("part " + std::to_string(p) + " of X has shape " +
                                  ShapeString(shape) + ", which does not match X's " +
                                  ShapeString(x_shape) + " but for its channels");
    }
    part_channels[p] = static_cast<size_t>(shape[1]);
    joined[1] += shape[1];
  }
  return joined;
}

std::shared_ptr<const DirectConvPlan> SparseConvKernel::PlanFor(
    const std::vector<int64_t>& x_shape, const size_t part_channels[kMaxXParts]) const {
  if (pointwise_.has_value()) {
    ConvOutputSize(x_shape, pointwise_->InputChannels(), window_, "pointwise_K");
  } else {
    ConvOutputSize(x_shape, channels_, depthwise_.has_value() ? depthwise_->window() : window_);
  }
  std::vector<size_t> parts;
  if (x_parts_ > 1) parts.assign(part_channels, part_channels + x_parts_);
  return plans_.Get(x_shape[2], x_shape[3], parts, [&](int64_t height, int64_t width) {
    return BuildPlan(height, width, parts);
  });
}

std::shared_ptr<const DirectConvPlan> SparseConvKernel::BuildPlan(
    int64_t in_height, int64_t in_width, const std::vector<size_t>& part_channels) const {
  auto plan = std::make_shared<DirectConvPlan>();
  plan->x_part_channels = part_channels;
  // With a prologue the planes are its output, which the op writes.
  PlaneReading reading = {microkernels_->panel_rows, microkernels_->vector_rows,
                          /*may_read_in_place=*/!depthwise_.has_value() && !pointwise_.has_value(),
                          kMaxAttribute};
  const int64_t product_height =
      depthwise_.has_value() ? depthwise_->window().height.OutputSize(in_height) : in_height;
  const int64_t product_width =
      depthwise_.has_value() ? depthwise_->window().width.OutputSize(in_width) : in_width;
  std::vector<int64_t> tap_offsets = LayOutDirectConv(
      window_, static_cast<size_t>(channels_), product_height, product_width, reading, *plan);
  if (pointwise_.has_value()) {
    reading.band_rows = PrologueBandRows(*plan, microkernels_->panel_rows);
    tap_offsets = LayOutDirectConv(window_, static_cast<size_t>(channels_), product_height,
                                   product_width, reading, *plan);
    plan->pointwise_offsets = pointwise_->Offsets(in_height, in_width);
  }
  std::string kernels = CompileFor(*plan, reading, tap_offsets);
  if (pointwise_.has_value()) {
    kernels += ", after a sparse 1x1 convolution of " +
               std::to_string(pointwise_->InputChannels()) + " channels, in bands of " +
               std::to_string(plan->band_rows) + " rows";
  }
  if (depthwise_.has_value()) {
    plan->depthwise = depthwise_->Plan(in_height, in_width);
    kernels += ", after a depthwise " + std::to_string(depthwise_->window().height.kernel) + "x" +
               std::to_string(depthwise_->window().width.kernel) + " convolution";
  }
  if (plan->compiled == nullptr && plan->in_place && !part_channels.empty()) {
    // Only compiled code reads X's parts in place, each from its own base; the tile kernels read
    // planes packed from them.
    reading.may_read_in_place = false;
    tap_offsets = LayOutDirectConv(window_, static_cast<size_t>(channels_), in_height, in_width,
                                   reading, *plan);
    kernels += ", on planes packed from X's " + std::to_string(part_channels.size()) + " parts";
  }
  if (verbose_) {
    std::fprintf(stderr, "ortsparse: %s, input %lldx%lld: %s\n", node_label_.c_str(),
                 static_cast<long long>(in_height), static_cast<long long>(in_width),
                 kernels.c_str());
  }
  if (plan->compiled != nullptr) return plan;

  const TileWeights& tw = tile_weights_;
  plan->offsets.resize(tw.input_indices.size());
  for (size_t chunk = 0; chunk < tw.chunks; ++chunk) {
    for (size_t block = 0; block < tw.k_blocks; ++block) {
      const size_t pass = chunk * tw.k_blocks + block;
      const size_t first = static_cast<size_t>(tw.segment_offsets[tw.pass_offsets[pass]]);
      const size_t end = static_cast<size_t>(tw.segment_offsets[tw.pass_offsets[pass + 1]]);
      for (size_t i = first; i < end; ++i) {
        const size_t k = block * tw.k_block_rows + tw.input_indices[i];
        plan->offsets[i] = static_cast<int32_t>(tap_offsets[k]);
      }
    }
  }
  return plan;
}

std::string SparseConvKernel::CompileFor(DirectConvPlan& plan, PlaneReading reading,
                                         std::vector<int64_t>& tap_offsets) const {
  if (!weights_to_compile_.has_value()) return "tile kernels (" + not_compiled_ + ")";
  const PackedWeights& packed = *weights_to_compile_;
  // Compiled code pays where its pieces run over enough vectors per fetch: ResNet-50's 7x7 and
  // 14x14 layers lost 15-80% compiled when a task ran them over one tile; over up to 4, with the
  // next piece prefetched, the whole network is the same either way, so they keep the tile
  // kernels and spare megabytes of code. Where the tile kernels finish Y themselves, it pays
  // only when a block's channels share each input vector among enough weights (ResNet-50's 1x1
  // Relu layers at 90%, about 2.8 weights, lost 25-50%).
  const double weights_per_input = static_cast<double>(packed.input_indices.size()) /
                                    static_cast<double>(matrix_.k * matrix_.n) *
                                    static_cast<double>(std::min<int64_t>(
                                        matrix_.n, kernels::CompiledConv::kMaxBlockChannels));
  // Planes in bands (a prologue's) are multiplied by band tasks, which have no finishing kernels;
  // nor has an output affine.
  const bool banded = plan.band_rows != 0;
  if (!banded && plan.planes.plane_width == plan.out_width && output_channel_groups_ == 0 &&
      !output_affine_.has_value() &&
      weights_per_input < kMinFinishingReuse &&
      DirectCsrFinishersFor(*microkernels_, false, matrix_.epilogue.activation,
                            kernels::ResidualMode::kNone) != nullptr) {
    return "tile kernels (they finish Y themselves)";
  }
  // Planes in bands count the whole image's tiles.
  const size_t image_positions =
      banded ? (plan.out_height - 1) * plan.planes.plane_width + plan.out_width
             : plan.grid_positions;
  const size_t tiles = CeilDiv(image_positions, microkernels_->panel_rows);
  if (tiles < kMinCompiledTiles) {
    return "tile kernels (" + std::to_string(tiles) + (tiles == 1 ? " tile" : " tiles") +
           " of grid positions per image, fewer than " + std::to_string(kMinCompiledTiles) + ")";
  }
  const auto lay_out = [&](size_t band_rows) {
    reading.band_rows = band_rows;
    tap_offsets = LayOutDirectConv(window_, static_cast<size_t>(channels_), plan.in_height,
                                   plan.in_width, reading, plan);
  };
  const size_t band_rows = banded ? plan.band_rows : BandRowsFor(plan, microkernels_->panel_rows);
  if (band_rows != 0 && !banded) lay_out(band_rows);
  // X's parts read in place: each feature's offset counts from its part's own base.
  std::vector<int64_t> offsets = tap_offsets;
  std::vector<uint8_t> bases;
  if (plan.in_place && !plan.x_part_channels.empty()) {
    const size_t taps = static_cast<size_t>(window_.Taps());
    const int64_t channel_elements = static_cast<int64_t>(plan.planes.ChannelElements());
    bases.resize(offsets.size());
    for (size_t part = 0, k = 0, first_channel = 0; part < plan.x_part_channels.size();
         first_channel += plan.x_part_channels[part++]) {
      for (; k < (first_channel + plan.x_part_channels[part]) * taps; ++k) {
        bases[k] = static_cast<uint8_t>(part);
        offsets[k] -= static_cast<int64_t>(first_channel) * channel_elements;
      }
    }
  }
  const kernels::ConvWeightsToCompile weights = {packed.values.data(),
                                                 packed.group_offsets.data(),
                                                 packed.input_indices.data(),
                                                 static_cast<size_t>(matrix_.n),
                                                 offsets.data(),
                                                 bases.empty() ? nullptr : bases.data(),
                                                 kCompiledAccStride};
  std::string why_not;
  plan.compiled = microkernels_->compile_conv(weights, &why_not);
  if (plan.compiled == nullptr) {
    // The tile kernels read the whole image's planes, unless they were in bands already.
    if (band_rows != 0 && !banded) lay_out(0);
    return "tile kernels (not compiled: " + why_not + ")";
  }
  return "compiled, " + std::to_string(plan.compiled->PieceCount()) + " pieces, " +
         std::to_string(CeilDiv(plan.compiled->CodeBytes(), 1024)) + " KiB of code" +
         (band_rows == 0 || banded
              ? ""
              : ", planes in bands of " + std::to_string(band_rows) + " rows") +
         (bases.empty() ? ""
                        : ", X's " + std::to_string(plan.x_part_channels.size()) +
                              " parts read in place");
}

void SparseConvKernel::Compute(Ort::KernelContext& context) const {
  size_t part_channels[kMaxXParts];
  const std::vector<int64_t> x_shape = JoinedXShape(context, part_channels);
  const std::shared_ptr<const DirectConvPlan> plan = PlanFor(x_shape, part_channels);
  ConvJob job{};
  job.plan = plan.get();
  const size_t images = static_cast<size_t>(x_shape[0]);
  const int64_t out_height = static_cast<int64_t>(plan->out_height);
  const int64_t out_width = static_cast<int64_t>(plan->out_width);
  const int64_t groups = output_channel_groups_;
  const int64_t split = output_split_;
  const std::vector<int64_t> y_shape =
      groups != 0  ? std::vector<int64_t>{x_shape[0], groups, out_height, out_width,
                                          matrix_.n / groups}
      : split != 0 ? std::vector<int64_t>{x_shape[0], split, out_height, out_width}
                   : std::vector<int64_t>{x_shape[0], matrix_.n, out_height, out_width};
  job.bias = BiasForRun(context, constant_bias_, matrix_.n);
  const float* residual = ResidualForRun(context, y_shape);
  Ort::UnownedValue y = context.GetOutput(0, y_shape);
  float* y_2_data = nullptr;
  if (split != 0) {
    y_2_data = context.GetOutput(1, {x_shape[0], matrix_.n - split, out_height, out_width})
                   .GetTensorMutableData<float>();
  }
  if (images == 0) return;
  job.y_channels = static_cast<size_t>(split != 0 ? split : matrix_.n);

  job.microkernels = microkernels_;
  job.tile_kernels = tile_kernels_;
  job.tile_weights = &tile_weights_;
  job.segments = {tile_weights_.values.data(), plan->offsets.data(),
                  tile_weights_.segment_offsets.data(), tile_weights_.segment_channels.data()};
  job.epilogue = matrix_.epilogue;
  job.group_channels = groups == 0 ? 0 : static_cast<size_t>(matrix_.n / groups);
  job.depthwise = depthwise_.has_value() ? &*depthwise_ : nullptr;
  job.pointwise = pointwise_.has_value() ? &*pointwise_ : nullptr;
  job.affine = output_affine_.has_value() ? &*output_affine_ : nullptr;
  if (plan->compiled == nullptr && matrix_.block_size == 1 && groups == 0 && split == 0 &&
      !output_affine_.has_value() && plan->planes.plane_width == plan->out_width) {
    const kernels::ResidualMode residual_mode =
        residual == nullptr                          ? kernels::ResidualMode::kNone
        : matrix_.epilogue.residual_before_activation ? kernels::ResidualMode::kBeforeActivation
                                                      : kernels::ResidualMode::kAfterActivation;
    job.finishers = DirectCsrFinishersFor(*microkernels_, tile_weights_.k_blocks > 1,
                                          matrix_.epilogue.activation, residual_mode);
  }
  job.n = static_cast<size_t>(matrix_.n);
  job.channel_floats = static_cast<size_t>(x_shape[2] * x_shape[3]);
  job.x_part_count = x_parts_;
  for (size_t p = 0, first_channel = 0; p < x_parts_; first_channel += part_channels[p++]) {
    const size_t input = p == 0 ? kInputX : kInputMoreXParts + p - 1;
    job.x_parts[p] = {context.GetInput(input).GetTensorData<float>(), first_channel,
                      part_channels[p]};
  }
  job.pixels = plan->out_height * plan->out_width;
  job.tiles_per_image = CeilDiv(plan->grid_positions, microkernels_->panel_rows);
  job.channels_per_pack_part =
      std::max<size_t>(1, kPackPartFloats / plan->planes.ChannelElements());

  float* y_data = y.GetTensorMutableData<float>();
  if (plan->band_rows != 0) {
    job.y = y_data;
    job.y_2 = y_2_data;
    job.residual = residual;
    const size_t bands = CeilDiv(plan->out_height, plan->band_rows);
    // A prologue's bands go in runs, each band reusing the rows of P that the one before it
    // computed, as few runs as leave kPrologueTasksPerCore tasks per core.
    static const size_t min_prologue_tasks =
        kPrologueTasksPerCore * std::max(1u, std::thread::hardware_concurrency());
    job.bands_per_task =
        pointwise_.has_value() ? CeilDiv(bands, CeilDiv(min_prologue_tasks, images)) : 1;
    RunTasks(context, threading_,
             plan->compiled != nullptr ? BandTask<CompiledBand> : BandTask<TileBand>,
             images * CeilDiv(bands, job.bands_per_task), &job);
    return;
  }

  job.planes_stride = plan->in_place ? 0 : RoundUp(plan->planes.total_elements, kCacheLineFloats);
  const size_t wave_images =
      plan->in_place ? images
                     : std::clamp<size_t>(kMaxWavePlaneFloats / job.planes_stride, 1, images);
  const ScratchBuffer planes(context, wave_images * job.planes_stride);
  job.planes = planes.data();

  const size_t y_image_floats = job.y_channels * job.pixels;
  const size_t y_2_image_floats = (job.n - job.y_channels) * job.pixels;
  ConvJob::XPart whole_x[kMaxXParts];
  std::copy(job.x_parts, job.x_parts + x_parts_, whole_x);
  for (size_t first = 0; first < images; first += wave_images) {
    const size_t count = std::min(wave_images, images - first);
    for (size_t p = 0; p < x_parts_; ++p) {
      job.x_parts[p].data = whole_x[p].data + first * whole_x[p].channels * job.channel_floats;
    }
    job.y = y_data + first * y_image_floats;
    job.y_2 = split != 0 ? y_2_data + first * y_2_image_floats : nullptr;
    job.residual = residual != nullptr ? residual + first * y_image_floats : nullptr;
    const std::unique_ptr<PackProgress[]> pack_progress(new PackProgress[count]);
    job.pack_progress = pack_progress.get();
    if (plan->compiled != nullptr) {
      const size_t groups = count * CeilDiv(job.tiles_per_image, kCompiledTilesPerTask);
      const size_t blocks = plan->compiled->BlockCount();
      RunTasks(context, threading_, CompiledConvTask,
               groups * blocks / job.SlicesPerTask(blocks), &job);
    } else {
      const size_t chunks = tile_weights_.chunks;
      RunTasks(context, threading_, ConvTileTask,
               count * job.tiles_per_image * chunks / job.SlicesPerTask(chunks), &job);
    }
  }
}

}  // namespace ortsparse
