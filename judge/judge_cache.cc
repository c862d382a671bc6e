// judge_cache.cc: the cache table (key BLOB primary key → value BLOB) on SQLite, with prepared statements
// kept for the life of the connection, behind the in-memory LRU.
#include "judge/judge_cache.h"

#include <openssl/evp.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"

namespace rlj {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS answers (
  key BLOB PRIMARY KEY,
  value BLOB NOT NULL,
  backend TEXT NOT NULL,
  created_unix_s REAL NOT NULL
) WITHOUT ROWID;
)sql";

absl::Status SqliteError(const std::string& path, sqlite3* db, std::string_view what) {
  return absl::InternalError(absl::StrCat("judge cache ", path, ": ", AsAbsl(what), ": ",
                                          db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

struct JudgeCache::State {
  explicit State(MemoryCache::Limits limits) : memory(limits) {}
  MemoryCache memory;
  std::atomic<int64_t> hits{0};
  std::atomic<int64_t> memory_hits{0};
  std::atomic<int64_t> misses{0};
  absl::Mutex mutex;  // the connection and its statements
  sqlite3* db = nullptr;
  sqlite3_stmt* select = nullptr;
  sqlite3_stmt* insert = nullptr;
  ~State() {
    sqlite3_finalize(select);
    sqlite3_finalize(insert);
    if (db != nullptr) sqlite3_close_v2(db);
  }
};

absl::StatusOr<std::unique_ptr<JudgeCache>> JudgeCache::Open(const std::string& path,
                                                             std::chrono::milliseconds busy_timeout,
                                                             MemoryCache::Limits memory) {
  std::error_code ec;
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec)
    return absl::InternalError(absl::StrCat("judge cache ", path, ": cannot create its directory: ", ec.message()));
  auto state = std::make_unique<State>(memory);
  if (sqlite3_open_v2(path.c_str(), &state->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    return SqliteError(path, state->db, "cannot open");
  }
  sqlite3_busy_timeout(state->db, static_cast<int>(busy_timeout.count()));
  // Reads through a memory map (no pread per page) for lookups that miss the in-memory layer.
  for (const char* sql :
       {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=NORMAL;", "PRAGMA mmap_size=268435456;", kSchema}) {
    char* error = nullptr;
    if (sqlite3_exec(state->db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string detail = error != nullptr ? error : "unknown error";
      sqlite3_free(error);
      return absl::InternalError(absl::StrCat("judge cache ", path, ": ", detail));
    }
  }
  if (sqlite3_prepare_v2(state->db, "SELECT value FROM answers WHERE key = ?1", -1, &state->select, nullptr) !=
      SQLITE_OK) {
    return SqliteError(path, state->db, "prepare select");
  }
  if (sqlite3_prepare_v2(state->db,
                         "INSERT OR REPLACE INTO answers (key, value, backend, created_unix_s) VALUES (?1, ?2, ?3, ?4)",
                         -1, &state->insert, nullptr) != SQLITE_OK) {
    return SqliteError(path, state->db, "prepare insert");
  }
  return std::unique_ptr<JudgeCache>(new JudgeCache(path, std::move(state)));
}

JudgeCache::JudgeCache(std::string path, std::unique_ptr<State> state)
    : path_(std::move(path)), state_(std::move(state)) {}

JudgeCache::~JudgeCache() = default;

std::string JudgeCache::Key(std::initializer_list<std::string_view> parts) {
  // One digest context per thread, reused: a key per sample must not cost an allocation and a free.
  struct Context {
    EVP_MD_CTX* context = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(context); }
  };
  thread_local Context reused;
  EVP_MD_CTX* context = reused.context;
  EVP_DigestInit_ex(context, EVP_sha256(), nullptr);
  for (std::string_view part : parts) {
    const uint64_t size = part.size();
    unsigned char prefix[8];
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(size >> (8 * i));
    EVP_DigestUpdate(context, prefix, sizeof(prefix));
    EVP_DigestUpdate(context, part.data(), part.size());
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(context, digest, &length);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

absl::StatusOr<std::vector<std::optional<std::string>>> JudgeCache::GetMany(const std::vector<std::string>& keys) {
  std::vector<std::optional<std::string>> values(keys.size());
  std::vector<size_t> absent;  // from memory: these go to the file
  for (size_t i = 0; i < keys.size(); ++i) {
    if (MemoryCache::Value value = state_->memory.Get(keys[i])) {
      values[i].emplace(*value);
    } else {
      absent.push_back(i);
    }
  }
  const int64_t from_memory = static_cast<int64_t>(keys.size() - absent.size());
  state_->hits.fetch_add(from_memory, std::memory_order_relaxed);
  state_->memory_hits.fetch_add(from_memory, std::memory_order_relaxed);
  if (absent.empty()) return values;

  std::vector<std::pair<size_t, MemoryCache::Value>> found;
  {
    absl::MutexLock lock(&state_->mutex);
    sqlite3* db = state_->db;
    const bool transaction = absent.size() > 1;
    if (transaction && sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return SqliteError(path_, db, "begin");
    }
    absl::Status failure;
    for (size_t i : absent) {
      sqlite3_stmt* select = state_->select;
      sqlite3_bind_blob(select, 1, keys[i].data(), static_cast<int>(keys[i].size()), SQLITE_STATIC);
      const int step = sqlite3_step(select);
      if (step == SQLITE_ROW) {
        const void* data = sqlite3_column_blob(select, 0);
        const int size = sqlite3_column_bytes(select, 0);
        found.emplace_back(
            i, std::make_shared<const std::string>(static_cast<const char*>(data), static_cast<size_t>(size)));
      } else if (step != SQLITE_DONE) {
        failure = SqliteError(path_, db, "select");
      }
      sqlite3_reset(select);
      sqlite3_clear_bindings(select);
      if (!failure.ok()) break;
    }
    if (transaction) sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    if (!failure.ok()) return failure;
  }
  state_->hits.fetch_add(static_cast<int64_t>(found.size()), std::memory_order_relaxed);
  state_->misses.fetch_add(static_cast<int64_t>(absent.size() - found.size()), std::memory_order_relaxed);
  for (auto& [i, value] : found) {
    values[i].emplace(*value);
    state_->memory.Put(keys[i], std::move(value));
  }
  return values;
}

absl::Status JudgeCache::PutMany(const std::vector<std::pair<std::string, std::string>>& entries,
                                 std::string_view backend) {
  if (entries.empty()) return absl::OkStatus();
  absl::MutexLock lock(&state_->mutex);
  sqlite3* db = state_->db;
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
    return SqliteError(path_, db, "begin");
  }
  const double now = UnixSeconds();
  absl::Status failure;
  for (const auto& [key, value] : entries) {
    sqlite3_stmt* insert = state_->insert;
    sqlite3_bind_blob(insert, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_blob(insert, 2, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
    sqlite3_bind_text(insert, 3, backend.data(), static_cast<int>(backend.size()), SQLITE_STATIC);
    sqlite3_bind_double(insert, 4, now);
    if (sqlite3_step(insert) != SQLITE_DONE) failure = SqliteError(path_, db, "insert");
    sqlite3_reset(insert);
    sqlite3_clear_bindings(insert);
    if (!failure.ok()) break;
  }
  if (!failure.ok()) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return failure;
  }
  if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return SqliteError(path_, db, "commit");
  for (const auto& [key, value] : entries) state_->memory.Put(key, std::make_shared<const std::string>(value));
  return absl::OkStatus();
}

int64_t JudgeCache::hits() const { return state_->hits.load(std::memory_order_relaxed); }

int64_t JudgeCache::misses() const { return state_->misses.load(std::memory_order_relaxed); }

int64_t JudgeCache::memory_hits() const { return state_->memory_hits.load(std::memory_order_relaxed); }

const MemoryCache& JudgeCache::memory() const { return state_->memory; }

}  // namespace rlj
