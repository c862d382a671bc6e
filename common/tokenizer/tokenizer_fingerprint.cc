// tokenizer_fingerprint.cc: the SHA-256 of a tokenizer's id → bytes map and special ids (OpenSSL's EVP).
#include "common/tokenizer/tokenizer_fingerprint.h"

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/tokenizer/byte_tokenizer.h"
#include "common/tokenizer/hf_tokenizer.h"

namespace rlj {
namespace {

// Feeds a SHA-256 with fixed-width integers and length-prefixed strings, so that no two different sequences
// of fields give the same stream of bytes (vocabularies {"ab", "c"} and {"a", "bc"} must differ).
class Digest {
 public:
  Digest() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr); }

  void Int(int64_t value) {
    unsigned char bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(value) >> (8 * i));
    EVP_DigestUpdate(context_.get(), bytes, sizeof(bytes));
  }
  void Bytes(std::string_view bytes) {
    Int(static_cast<int64_t>(bytes.size()));
    EVP_DigestUpdate(context_.get(), bytes.data(), bytes.size());
  }
  void Ids(const std::vector<int32_t>& ids) {
    Int(static_cast<int64_t>(ids.size()));
    for (const int32_t id : ids) Int(id);
  }
  std::string Hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_DigestFinal_ex(context_.get(), digest, &length);
    return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), length));
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context_;
};

}  // namespace

std::string TokenizerFingerprint(const Tokenizer& tokenizer) {
  Digest digest;
  // A version tag: a later change of what is hashed must not compare equal to this one.
  digest.Bytes("rlj tokenizer fingerprint v1");
  digest.Int(tokenizer.vocab_size());
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    digest.Int(tokenizer.IsSpecial(id) ? 1 : 0);
    digest.Bytes(tokenizer.TokenBytes(id));
  }
  digest.Ids({tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id()});
  digest.Ids(tokenizer.stop_ids());
  digest.Ids(tokenizer.prefix_ids());
  return digest.Hex();
}

std::string_view TokenizerKind(const Tokenizer& tokenizer) {
  if (dynamic_cast<const ByteTokenizer*>(&tokenizer) != nullptr) return "byte";
  if (dynamic_cast<const HfTokenizer*>(&tokenizer) != nullptr) return "hf";
  return "other";
}

}  // namespace rlj
