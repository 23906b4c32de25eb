// Checkpoint: a versioned, checksummed file of named tensors and named text values (model
// parameters and buffers, optimizer momentum, RNG states, epoch, metrics). Written atomically
// (io/atomic_file.hpp); loading validates the magic, the checksum, the version, every length
// against the file size and the uniqueness of the names, and reports the first problem with the
// file name. Nothing a file holds can make the reader read out of bounds or allocate more than
// the file's size (fuzzed: tests/fuzz/fuzz_checkpoint.cpp).
//
// Format (little-endian, version 1):
//   "NLCKPT\r\n" | u32 version | u32 entry count | entries | u64 FNV-1a-64 of all preceding bytes
//   entry: u32 name length | name | u8 kind (0 f32 tensor, 1 f64 tensor, 2 text)
//          tensor: u32 rank | i64 dims[rank] | data;   text: u64 length | bytes
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "normlab/io/atomic_file.hpp"
#include "normlab/core/tensor.hpp"

namespace normlab::io {

class Checkpoint {
 public:
  static constexpr uint32_t version = 1;

  /// Ensures: `name` holds a copy of t (converted to nothing: stored in T's precision), copied
  /// to the host first if t is on a device.
  template <typename T>
  void put_tensor(const std::string& name, const Tensor<T>& tensor) {
    const Tensor<T> t = tensor.to(Device::cpu());
    Entry e;
    e.kind = std::is_same_v<T, float> ? Kind::F32 : Kind::F64;
    e.dims = t.shape().dims();
    e.bytes.assign(reinterpret_cast<const char*>(t.data()), reinterpret_cast<const char*>(t.data() + t.numel()));
    entries_[name] = std::move(e);
  }
  void put_text(const std::string& name, const std::string& value) {
    Entry e;
    e.kind = Kind::Text;
    e.bytes.assign(value.begin(), value.end());
    entries_[name] = std::move(e);
  }
  bool has(const std::string& name) const { return entries_.count(name) != 0; }

  /// Requires: `name` is a tensor of T's precision with shape `expected` (if given).
  template <typename T>
  Tensor<T> tensor(const std::string& name, const Shape* expected = nullptr) const {
    const Entry& e = find(name);
    NORMLAB_CHECK(e.kind == (std::is_same_v<T, float> ? Kind::F32 : Kind::F64), "checkpoint entry '", name,
                  "' is not a tensor of the requested precision");
    const Shape shape(e.dims);
    NORMLAB_CHECK(!expected || *expected == shape, "checkpoint entry '", name, "' has shape ", shape.str(),
                  ", the model expects ", expected->str());
    Tensor<T> t = Tensor<T>::empty(shape);
    if (!e.bytes.empty()) std::memcpy(t.data(), e.bytes.data(), e.bytes.size());
    return t;
  }
  /// Requires: `name` is a text entry.
  std::string text(const std::string& name) const {
    const Entry& e = find(name);
    NORMLAB_CHECK(e.kind == Kind::Text, "checkpoint entry '", name, "' is not text");
    return std::string(e.bytes.begin(), e.bytes.end());
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& kv : entries_) out.push_back(kv.first);
    return out;
  }

  /// Ensures: `path` holds this checkpoint (atomically replaced), or an Error is thrown.
  void save(const std::string& path) const { write_file_atomic(path, serialize(), "Checkpoint::save"); }

  /// Ensures: the checkpoint stored in `path`, or an Error naming the file and the problem.
  static Checkpoint load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    NORMLAB_CHECK(in.good(), "cannot open checkpoint '", path, "'");
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return from_bytes(bytes, path);
  }

  /// Ensures: the checkpoint serialised in `bytes`, or an Error naming `source` (a file name)
  /// and the first problem found.
  static Checkpoint from_bytes(const std::string& bytes, const std::string& source) {
    return parse(bytes, source);
  }
  /// Ensures: the bytes save() writes (from_bytes(to_bytes()) round-trips).
  std::string to_bytes() const { return serialize(); }

 private:
  enum class Kind : uint8_t { F32 = 0, F64 = 1, Text = 2 };
  struct Entry {
    Kind kind = Kind::Text;
    std::vector<int64_t> dims;
    std::vector<char> bytes;
  };
  static constexpr char magic_[8] = {'N', 'L', 'C', 'K', 'P', 'T', '\r', '\n'};

  const Entry& find(const std::string& name) const {
    auto it = entries_.find(name);
    NORMLAB_CHECK(it != entries_.end(), "checkpoint has no entry '", name, "'");
    return it->second;
  }

  static uint64_t fnv1a(const char* data, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 0x100000001b3ull;
    return h;
  }
  template <typename V>
  static void append(std::string& out, V v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof v);
  }

  std::string serialize() const {
    std::string out(magic_, sizeof magic_);
    append(out, version);
    append(out, static_cast<uint32_t>(entries_.size()));
    for (const auto& [name, e] : entries_) {
      append(out, static_cast<uint32_t>(name.size()));
      out += name;
      append(out, static_cast<uint8_t>(e.kind));
      if (e.kind == Kind::Text) {
        append(out, static_cast<uint64_t>(e.bytes.size()));
      } else {
        append(out, static_cast<uint32_t>(e.dims.size()));
        for (int64_t d : e.dims) append(out, d);
      }
      out.append(e.bytes.data(), e.bytes.size());
    }
    append(out, fnv1a(out.data(), out.size()));
    return out;
  }

  // Reads values from the byte string, failing with the file name on truncation.
  struct Reader {
    const std::string& bytes;
    const std::string& path;
    size_t pos = 0;
    void need(size_t n) const {
      NORMLAB_CHECK(n <= bytes.size() - 8 - pos, "checkpoint '", path, "' is truncated or corrupt (needs ", n,
                    " more bytes at offset ", pos, ")");
    }
    template <typename V>
    V read() {
      need(sizeof(V));
      V v;
      std::memcpy(&v, bytes.data() + pos, sizeof v);
      pos += sizeof v;
      return v;
    }
    const char* take(size_t n) {
      need(n);
      pos += n;
      return bytes.data() + pos - n;
    }
  };

  static Checkpoint parse(const std::string& bytes, const std::string& path) {
    NORMLAB_CHECK(bytes.size() >= sizeof magic_ + 16 && std::memcmp(bytes.data(), magic_, sizeof magic_) == 0,
                  "'", path, "' is not a normlab checkpoint (bad magic or too short: ", bytes.size(), " bytes)");
    uint64_t stored;
    std::memcpy(&stored, bytes.data() + bytes.size() - 8, 8);
    NORMLAB_CHECK(stored == fnv1a(bytes.data(), bytes.size() - 8), "checkpoint '", path,
                  "' is corrupt: checksum mismatch");
    Reader r{bytes, path, sizeof magic_};
    const uint32_t file_version = r.read<uint32_t>();
    NORMLAB_CHECK(file_version == version, "checkpoint '", path, "' has format version ", file_version,
                  ", this build reads version ", version);
    Checkpoint ckpt;
    const uint32_t count = r.read<uint32_t>();
    for (uint32_t i = 0; i < count; ++i) {
      const uint32_t name_length = r.read<uint32_t>();
      std::string name(r.take(name_length), name_length);
      Entry e;
      const uint8_t kind = r.read<uint8_t>();
      NORMLAB_CHECK(kind <= 2, "checkpoint '", path, "': entry '", name, "' has unknown kind ", int(kind));
      e.kind = static_cast<Kind>(kind);
      uint64_t payload;
      if (e.kind == Kind::Text) {
        payload = r.read<uint64_t>();
      } else {
        const uint32_t rank = r.read<uint32_t>();
        NORMLAB_CHECK(rank <= 8, "checkpoint '", path, "': entry '", name, "' has rank ", rank);
        // Shape multiplies the extents in order, so their product must stay small even when
        // one of them is 0 (zeros count as 1 here; found by fuzzing: an entry of shape
        // [0, 2^38, 2^30] made Shape::numel overflow).
        uint64_t elements = 1;
        bool empty = false;
        for (uint32_t d = 0; d < rank; ++d) {
          const int64_t extent = r.read<int64_t>();
          NORMLAB_CHECK(extent >= 0 && extent < (int64_t(1) << 40), "checkpoint '", path, "': entry '", name,
                        "' has extent ", extent);
          e.dims.push_back(extent);
          empty = empty || extent == 0;
          const uint64_t factor = static_cast<uint64_t>(std::max<int64_t>(extent, 1)), limit = uint64_t(1) << 40;
          NORMLAB_CHECK(factor <= (limit - 1) / elements, "checkpoint '", path, "': entry '", name,
                        "' is too large (2^40 elements or more)");
          elements *= factor;  // < 2^40, checked before multiplying so that nothing wraps
        }
        payload = empty ? 0 : elements * (e.kind == Kind::F32 ? 4 : 8);
      }
      const char* data = r.take(payload);
      e.bytes.assign(data, data + payload);
      NORMLAB_CHECK(ckpt.entries_.count(name) == 0, "checkpoint '", path, "': entry '", name, "' appears twice");
      ckpt.entries_[name] = std::move(e);
    }
    NORMLAB_CHECK(r.pos == bytes.size() - 8, "checkpoint '", path, "' has ", bytes.size() - 8 - r.pos,
                  " unexpected trailing bytes");
    return ckpt;
  }

  std::map<std::string, Entry> entries_;
};

}  // namespace normlab::io
