// terminal_text.cc: truncation, tables and character plots for `rlj logs`.
#include "logs/terminal_text.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace rlj::logs {
namespace {

bool IsContinuationByte(unsigned char c) { return (c & 0xC0) == 0x80; }

// Pads (or cuts) to exactly `width` columns.
std::string Fit(std::string_view text, size_t width, bool right_align) {
  std::string cell = OneLine(text, width);
  const size_t used = DisplayWidth(cell);
  const std::string pad(width > used ? width - used : 0, ' ');
  return right_align ? pad + cell : cell + pad;
}

}  // namespace

int TerminalWidth() {
  struct winsize size {};
  if (::isatty(STDOUT_FILENO) && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
    return std::max(40, static_cast<int>(size.ws_col));
  }
  if (const char* columns = std::getenv("COLUMNS"); columns != nullptr) {
    const int value = std::atoi(columns);
    if (value > 0) return std::max(40, value);
  }
  return 100;
}

size_t DisplayWidth(std::string_view text) {
  size_t width = 0;
  for (unsigned char c : text) {
    if (!IsContinuationByte(c)) ++width;
  }
  return width;
}

std::string OneLine(std::string_view text, size_t width) {
  std::string line;
  line.reserve(std::min(text.size(), width * 4 + 8));
  size_t columns = 0;
  size_t i = 0;
  bool cut = false;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t length = 1;
    if (c >= 0xF0)
      length = 4;
    else if (c >= 0xE0)
      length = 3;
    else if (c >= 0xC0)
      length = 2;
    length = std::min(length, text.size() - i);
    if (columns + 1 > width) {
      cut = true;
      break;
    }
    if (c == '\n') {
      line += "⏎";
    } else if (c < 0x20 || c == 0x7F) {
      line += ' ';
    } else {
      line.append(text.substr(i, length));
    }
    ++columns;
    i += length;
  }
  if (cut && width > 0) {
    // Replace the last character with the ellipsis.
    while (!line.empty()) {
      const unsigned char last = static_cast<unsigned char>(line.back());
      line.pop_back();
      if (!IsContinuationByte(last)) break;
    }
    line += "…";
  }
  return line;
}

std::string FormatNumber(double value, int precision) {
  if (std::isnan(value)) return "-";
  char buffer[64];
  const double magnitude = std::abs(value);
  if (magnitude != 0 && (magnitude >= 1e6 || magnitude < 1e-3)) {
    std::snprintf(buffer, sizeof(buffer), "%.*e", std::max(1, precision - 1), value);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.*f", precision, value);
  }
  return buffer;
}

void TextTable::AddColumn(std::string header, bool right_align, bool shrinkable) {
  columns_.push_back({std::move(header), right_align, shrinkable});
}

void TextTable::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string TextTable::Render(int width) const {
  const size_t n = columns_.size();
  if (n == 0) return {};
  std::vector<size_t> widths(n);
  for (size_t c = 0; c < n; ++c) {
    widths[c] = DisplayWidth(columns_[c].header);
    for (const auto& row : rows_) widths[c] = std::max(widths[c], DisplayWidth(OneLine(row[c], 4096)));
  }
  const auto total = [&] {
    size_t sum = 2 * (n - 1);
    for (size_t w : widths) sum += w;
    return sum;
  };
  // Shrink the widest shrinkable column, one column at a time, until the table fits.
  while (total() > static_cast<size_t>(std::max(width, 20))) {
    size_t widest = n;
    for (size_t c = 0; c < n; ++c) {
      if (columns_[c].shrinkable && widths[c] > 8 && (widest == n || widths[c] > widths[widest])) widest = c;
    }
    if (widest == n) break;
    const size_t excess = total() - static_cast<size_t>(std::max(width, 20));
    widths[widest] = std::max<size_t>(8, widths[widest] - std::min(excess, widths[widest] - 8));
  }
  std::string out;
  const auto emit = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (size_t c = 0; c < n; ++c) {
      if (c > 0) line += "  ";
      line += Fit(cells[c], widths[c], columns_[c].right_align);
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line;
    out += '\n';
  };
  std::vector<std::string> headers;
  for (const Column& column : columns_) headers.push_back(column.header);
  emit(headers);
  for (const auto& row : rows_) emit(row);
  return out;
}

std::string PlotCurve(const std::vector<CurvePoint>& points, int width, int height, const std::string& y_label) {
  if (points.empty()) return "(no points)\n";
  width = std::max(width, 10);
  height = std::max(height, 3);
  double x_min = points.front().x, x_max = points.front().x;
  double y_min = INFINITY, y_max = -INFINITY;
  for (const CurvePoint& p : points) {
    x_min = std::min(x_min, p.x);
    x_max = std::max(x_max, p.x);
    for (double v : {p.y, p.low, p.high}) {
      if (std::isfinite(v)) {
        y_min = std::min(y_min, v);
        y_max = std::max(y_max, v);
      }
    }
  }
  if (!std::isfinite(y_min)) return "(no finite values)\n";
  if (y_max - y_min < 1e-12) {
    y_min -= 0.5;
    y_max += 0.5;
  }
  if (x_max - x_min < 1e-12) x_max = x_min + 1;
  std::vector<std::string> grid(static_cast<size_t>(height), std::string(static_cast<size_t>(width), ' '));
  const auto column = [&](double x) {
    return std::clamp(static_cast<int>(std::lround((x - x_min) / (x_max - x_min) * (width - 1))), 0, width - 1);
  };
  const auto row = [&](double y) {
    return std::clamp(static_cast<int>(std::lround((y_max - y) / (y_max - y_min) * (height - 1))), 0, height - 1);
  };
  for (const CurvePoint& p : points) {
    if (!std::isfinite(p.low) || !std::isfinite(p.high)) continue;
    const int c = column(p.x);
    for (int r = row(p.high); r <= row(p.low); ++r) grid[static_cast<size_t>(r)][static_cast<size_t>(c)] = ':';
  }
  for (const CurvePoint& p : points) {
    if (std::isfinite(p.y)) grid[static_cast<size_t>(row(p.y))][static_cast<size_t>(column(p.x))] = '*';
  }
  const std::string top = FormatNumber(y_max), bottom = FormatNumber(y_min);
  const size_t label_width = std::max(top.size(), bottom.size());
  std::string out = y_label + "\n";
  for (int r = 0; r < height; ++r) {
    std::string label = r == 0 ? top : (r == height - 1 ? bottom : "");
    out += std::string(label_width - label.size(), ' ') + label + " |" + grid[static_cast<size_t>(r)] + "\n";
  }
  out += std::string(label_width, ' ') + " +" + std::string(static_cast<size_t>(width), '-') + "\n";
  const std::string left = FormatNumber(x_min, 0), right = FormatNumber(x_max, 0);
  const size_t gap = static_cast<size_t>(width) > left.size() + right.size() ? width - left.size() - right.size() : 1;
  out += std::string(label_width + 2, ' ') + left + std::string(gap, ' ') + right + "\n";
  return out;
}

}  // namespace rlj::logs
