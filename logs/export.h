// export.h: reward log rows as JSON lines or CSV (RFC 4180), every column, for other tools.
#pragma once

#include <ostream>
#include <vector>

#include "common/reward_log.h"
#include "nlohmann/json.hpp"

namespace rlj::logs {

// One row as a JSON object: every column, "row" = replica:id, components parsed, reward null on failure.
nlohmann::json RowToJson(const RewardLogRow& row);

void WriteJsonl(const std::vector<RewardLogRow>& rows, std::ostream& out);

// A header line, then one line per row; fields with commas, quotes or newlines are quoted, quotes doubled.
void WriteCsv(const std::vector<RewardLogRow>& rows, std::ostream& out);

}  // namespace rlj::logs
