// What pw prints of text it does not control: control characters, C1 controls and bytes
// outside valid UTF-8 are shown as \xNN; valid UTF-8 passes through.
#include <catch2/catch.hpp>

#include "util/output.hpp"

using pw::out::one_line;
using pw::out::printable;

TEST_CASE("output: control characters, C1 controls and stray bytes are shown, UTF-8 passes", "[output]") {
  // C0 controls and DEL; line breaks and tabs are pw's own in printable, not in one_line.
  CHECK(printable("a\x1b[2Jb\x07\x7f") == "a\\x1b[2Jb\\x07\\x7f");
  CHECK(printable("two\nlines\tand tab") == "two\nlines\tand tab");
  CHECK(one_line("two\nlines\tand tab\r") == "two\\x0alines\\x09and tab\\x0d");
  // C1 controls in UTF-8 (U+009B is CSI) are shown as their code point.
  CHECK(printable("x\xc2\x9b" "2J") == "x\\x9b2J");
  CHECK(printable("\xc2\x80\xc2\x9f") == "\\x80\\x9f");
  // A lone 8-bit control byte, or any byte that is not part of valid UTF-8, is shown as
  // itself: a terminal reading 8-bit controls takes a lone 0x9B as CSI.
  CHECK(printable("x\x9b" "2J") == "x\\x9b2J");
  CHECK(printable("\xff\xfe") == "\\xff\\xfe");
  CHECK(printable("\xc3") == "\\xc3");                  // truncated sequence
  CHECK(printable("\xc3(") == "\\xc3(");                // lead byte without continuation
  CHECK(printable("\xc0\xaf") == "\\xc0\\xaf");        // overlong '/'
  CHECK(printable("\xe0\x80\xaf") == "\\xe0\\x80\\xaf");  // overlong, 3 bytes
  CHECK(printable("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // a UTF-16 surrogate
  CHECK(printable("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  // Valid UTF-8 of every length is kept, including U+00A0 right after the C1 range.
  const std::string utf8 = "caf\xc3\xa9 \xc2\xa0 \xe2\x82\xac \xf0\x9f\x94\x91 \xe4\xb8\xad";
  CHECK(printable(utf8) == utf8);
  CHECK(one_line(utf8) == utf8);
}
