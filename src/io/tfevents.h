// io/tfevents: a writer of TensorBoard event files (scalars only), written by
// hand: no TensorFlow, no protobuf library.
//
// The file is a TFRecord stream. Each record is
//
//   uint64 length (little-endian) | uint32 masked_crc32c(length's 8 bytes)
//   | data[length] | uint32 masked_crc32c(data)
//
// where crc32c is CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial
// value and final xor 0xFFFFFFFF; "123456789" gives 0xE3069283) and
//
//   masked_crc(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8   (mod 2^32).
//
// Each record's data is one tensorflow.Event protocol buffer, encoded here:
//
//   Event   { double wall_time = 1; int64 step = 2;
//             oneof { string file_version = 3; Summary summary = 5; } }
//   Summary { repeated Value value = 1; }
//   Value   { string tag = 1; float simple_value = 2; }
//
// (wire types: 1 = 64-bit for the double, 0 = varint for the step, 2 =
// length-delimited for strings and messages, 5 = 32-bit for the float; fields
// at their proto3 default, a zero step, are left out as a protobuf encoder
// does). The first record is the event {wall_time, file_version:
// "brain.Event:2"}; each scalar is then one event holding one Value.
//
// The file is named as TensorBoard looks for it, events.out.tfevents.<unix
// seconds>.<hostname>.<pid>, in the folder given (created when missing; a
// name already there gets a .1, .2, ... suffix instead of being overwritten).
// `tensorboard --logdir FOLDER` reads it while it is written: call
// tfevents_flush after each step's scalars.
#ifndef RLHF_IO_TFEVENTS_H
#define RLHF_IO_TFEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct tfevents tfevents;

// Creates dir (mkdir -p) and a new event file in it, and writes the
// file_version event. *w is NULL on failure.
int tfevents_open(tfevents **w, const char *dir, rlhf_err *err);
// Appends one scalar event (tag: any non-empty string; TensorBoard groups tags
// by the part before the first '/'). wall_time: seconds since the Unix epoch
// (tfevents_wall_time()).
int tfevents_scalar(tfevents *w, const char *tag, int64_t step, double wall_time, float value,
                    rlhf_err *err);
// Pushes what was written to the file, so a running tensorboard sees it.
int tfevents_flush(tfevents *w, rlhf_err *err);
// Flushes, closes and frees (w may be NULL); -1 + err when the last writes failed.
int tfevents_close(tfevents *w, rlhf_err *err);
// The event file's path.
const char *tfevents_path(const tfevents *w);

// Seconds since the Unix epoch, with sub-second precision (an Event's wall_time).
double tfevents_wall_time(void);

// The checksums of the framing (exposed for tests and readers).
uint32_t tfevents_crc32c(const void *data, size_t n);
uint32_t tfevents_masked_crc32c(const void *data, size_t n);

#endif
