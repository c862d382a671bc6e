// terminal_text.h: output that fits a terminal: one-line truncation of long fields (by display columns,
// UTF-8 aware), tables whose widest columns shrink to the terminal width, and a character plot of a curve
// with a spread band.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rlj::logs {

// Columns of the terminal on stdout (TIOCGWINSZ), else $COLUMNS, else 100; at least 40.
int TerminalWidth();

// Display columns of UTF-8 text (one per code point; wide CJK/emoji count as one, an approximation).
size_t DisplayWidth(std::string_view text);

// `text` on one line (newlines shown as ⏎, tabs and other control characters as spaces), cut to at most
// `width` columns with "…" at the end when it was longer.
std::string OneLine(std::string_view text, size_t width);

// A number for people: "0.734", "12.5", "1.2e+06", "-" for NaN.
std::string FormatNumber(double value, int precision = 3);

class TextTable {
 public:
  // `shrinkable`: the column gives up width (down to 8) when the table is wider than the terminal.
  void AddColumn(std::string header, bool right_align = false, bool shrinkable = false);
  void AddRow(std::vector<std::string> cells);
  // Rows separated by newlines, columns by two spaces, within `width` columns where shrinking allows.
  std::string Render(int width) const;

 private:
  struct Column {
    std::string header;
    bool right_align;
    bool shrinkable;
  };
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

struct CurvePoint {
  double x = 0;
  double y = 0;     // the line (e.g. the mean)
  double low = 0;   // the band (e.g. p10); NaN: no band at this point
  double high = 0;  // (e.g. p90)
};

// A plot `width` × `height` characters plus axes: '*' the line, ':' the band, x and y ranges labelled.
std::string PlotCurve(const std::vector<CurvePoint>& points, int width, int height, const std::string& y_label);

}  // namespace rlj::logs
