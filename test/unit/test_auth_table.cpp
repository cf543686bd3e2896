// test_auth_table.cpp - unit tests for the auth file: src/server/
// auth_table.{h,cpp} (the format, the table, PEERS), auth_file.{h,cpp}
// (reading it from disk, bounded) and base64url.{h,cpp}.
//
//  - base64url against RFC 4648's vectors, every length, and the spellings
//    it must refuse (padding, the other alphabet, non-zero spare bits);
//  - ids: every byte value through escape and unescape, the canonical
//    spelling, and each malformed escape;
//  - verifiers: format and parse agree, anything else is refused;
//  - the table: a file with every feature parses to the right entries;
//    each error names the line; duplicates name both lines; PEERS lookups
//    against a model for a long list; the bounds on lines, line length and
//    size; memory taken by a pathological file, against its size;
//  - load_auth_file: missing file, directory, FIFO (without blocking),
//    oversize file, and the warning for a file others may read.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>

#include "auth_file.h"
#include "auth_proof.h"
#include "auth_table.h"
#include "base64url.h"
#include "log.h"

extern "C" {
#include <cmocka.h>
}

namespace {

const HashKey kKey{1, 2};

std::string b64(const std::string& bytes) {
    char out[512];
    base64url_encode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), out);
    return out;
}

// The verifier text for a token, through the project's code.
std::string verifier(const char* token) {
    AuthVerifier v;
    auth_verifier_from_token(token, std::strlen(token), &v);
    char text[kVerifierTextMax];
    auth_verifier_format(v, text);
    return text;
}

std::unique_ptr<AuthTable> parse(const std::string& text, std::string* err = nullptr) {
    char buf[1024] = "";
    std::unique_ptr<AuthTable> t = AuthTable::parse(text, "auth.txt", kKey, buf, sizeof buf);
    if (err != nullptr) *err = buf;
    return t;
}

void expect_error(const std::string& text, const char* want) {
    std::string err;
    std::unique_ptr<AuthTable> t = parse(text, &err);
    if (t) fail_msg("parsed, but expected \"%s\"", want);
    if (err.find(want) == std::string::npos)
        fail_msg("error \"%s\", expected it to contain \"%s\"", err.c_str(), want);
}

// ---- base64url ---------------------------------------------------------------

void test_base64url_vectors(void**) {
    // RFC 4648 section 10, without padding (the same in both alphabets).
    assert_string_equal(b64("").c_str(), "");
    assert_string_equal(b64("f").c_str(), "Zg");
    assert_string_equal(b64("fo").c_str(), "Zm8");
    assert_string_equal(b64("foo").c_str(), "Zm9v");
    assert_string_equal(b64("foob").c_str(), "Zm9vYg");
    assert_string_equal(b64("fooba").c_str(), "Zm9vYmE");
    assert_string_equal(b64("foobar").c_str(), "Zm9vYmFy");
    // The two characters that differ from base64: 62 '-' and 63 '_'.
    assert_string_equal(b64("\xfb\xff").c_str(), "-_8");
    // Every length round-trips.
    for (size_t n = 0; n <= 40; ++n) {
        std::string bytes;
        for (size_t i = 0; i < n; ++i) bytes += static_cast<char>(i * 37 + 5);
        std::string text = b64(bytes);
        assert_int_equal(text.size(), base64url_length(n));
        uint8_t back[64];
        assert_true(base64url_decode(text.data(), text.size(), back, n));
        assert_memory_equal(back, bytes.data(), n);
    }
}

void test_base64url_refuses(void**) {
    uint8_t out[8];
    assert_false(base64url_decode("Zg==", 4, out, 1));  // padding
    assert_false(base64url_decode("Zg=", 3, out, 1));
    assert_false(base64url_decode("Z", 1, out, 1));      // too short
    assert_false(base64url_decode("Zm8", 3, out, 1));    // too long
    assert_false(base64url_decode("+_8", 3, out, 2));    // the other alphabet
    assert_false(base64url_decode("-/8", 3, out, 2));
    assert_false(base64url_decode("Zh", 2, out, 1));     // spare bits set
    assert_false(base64url_decode("Zm9", 3, out, 2));
    assert_false(base64url_decode("Z g", 3, out, 2));
    assert_true(base64url_decode("Zg", 2, out, 1));
    assert_int_equal(out[0], 'f');
}

// ---- ids and verifiers --------------------------------------------------------

void test_id_escapes(void**) {
    // Every single byte, and a 255-byte id of all of them, round-trip.
    for (int c = 0; c < 256; ++c) {
        std::string id(1, static_cast<char>(c));
        char text[kEscapedIdMax];
        size_t n = auth_id_escape(id, text);
        bool plain = c > 0x20 && c < 0x7f && c != '#' && c != ',' && c != '\\' && c != '*';
        assert_int_equal(n, plain ? 1u : 4u);
        uint8_t back[P2P_ID_MAX];
        const char* why = nullptr;
        assert_int_equal(auth_id_unescape(std::string_view(text, n), back, &why), 1);
        assert_int_equal(back[0], c);
    }
    std::string all;
    for (int c = 0; c < 255; ++c) all += static_cast<char>(255 - c);
    char text[kEscapedIdMax];
    size_t n = auth_id_escape(all, text);
    uint8_t back[P2P_ID_MAX];
    const char* why = nullptr;
    assert_int_equal(auth_id_unescape(std::string_view(text, n), back, &why), 255);
    assert_memory_equal(back, all.data(), 255);
    // "*" is plain inside an id, escaped alone; upper-case hex is read.
    assert_int_equal(auth_id_escape("a*", text), 2);
    assert_int_equal(auth_id_unescape("\\x41\\x7A", back, &why), 2);
    assert_memory_equal(back, "Az", 2);
    // Refused: empty, too long, raw bytes that must be escaped, and every
    // malformed escape.
    const char* bad[] = {"", "a b", "a\tb", "a,b", "a#b", "a\\b", "\\", "\\x", "\\x4", "\\xg0",
                         "\\X41", "caf\xc3\xa9", "del\x7f"};
    for (const char* b : bad) {
        why = nullptr;
        assert_int_equal(auth_id_unescape(b, back, &why), 0);
        assert_non_null(why);
    }
    std::string long_id(256, 'x');
    assert_int_equal(auth_id_unescape(long_id, back, &why), 0);
    assert_string_equal(why, "id longer than 255 bytes");
    assert_int_equal(auth_id_unescape(long_id.substr(1), back, &why), 255);
}

void test_verifiers(void**) {
    std::string v = verifier("token");
    AuthVerifier parsed;
    assert_true(auth_verifier_parse(v, &parsed));
    char again[kVerifierTextMax];
    auth_verifier_format(parsed, again);
    assert_string_equal(again, v.c_str());
    assert_int_equal(v.size(), kVerifierTextMax - 1);
    std::string scheme = "p2p-scram-sha256$";
    assert_int_equal(v.compare(0, scheme.size(), scheme), 0);
    // Anything else is refused.
    std::string bad[] = {"", v.substr(1), v + "A", "scram-sha-256" + v.substr(16), v.substr(0, 60),
                         v.substr(0, 60) + "=" + v.substr(61)};
    for (const std::string& b : bad) assert_false(auth_verifier_parse(b, &parsed));
    std::string no_dollar = v;
    no_dollar[16] = '#';
    assert_false(auth_verifier_parse(no_dollar, &parsed));
    std::string spare_bits = v;
    spare_bits[16 + 43] = 'B';  // the last character of StoredKey: 2 data bits only
    assert_false(auth_verifier_parse(spare_bits, &parsed));
}

// ---- the table ------------------------------------------------------------------

void test_parse_features(void**) {
    std::string va = verifier("A"), vb = verifier("B");
    std::string text = "# devices\n"
                       "\n"
                       "   \t  \n"
                       "alice " + va + "\n"                            // PEERS absent: *
                       "\tbob\t" + vb + "\t  alice,\\x2a,sp\\x20ce  # trailing comment\r\n"
                       "car\\x23ol " + va + " *\n"
                       "dave " + vb + " bob#comment right after\n"
                       "last " + va;                                   // no newline at the end
    std::string err;
    std::unique_ptr<AuthTable> t = parse(text, &err);
    if (!t) fail_msg("%s", err.c_str());
    assert_int_equal(t->size(), 5);
    const AuthEntry* alice = t->find("alice");
    const AuthEntry* bob = t->find("bob");
    const AuthEntry* carol = t->find("car#ol");
    const AuthEntry* dave = t->find("dave");
    assert_non_null(alice);
    assert_non_null(bob);
    assert_non_null(carol);
    assert_non_null(dave);
    assert_non_null(t->find("last"));
    assert_null(t->find("car\\x23ol"));
    assert_int_equal(alice->line, 4);
    assert_int_equal(bob->line, 5);
    AuthVerifier want;
    assert_true(auth_verifier_parse(vb, &want));
    assert_memory_equal(&bob->verifier, &want, sizeof want);
    // "*" and absent PEERS let everyone in, even a connection with no id.
    assert_true(t->allows(*alice, ""));
    assert_true(t->allows(*alice, "anyone"));
    assert_true(t->allows(*carol, ""));
    // bob: alice, the id "*" and "sp ce"; nobody else, not the unregistered.
    assert_true(t->allows(*bob, "alice"));
    assert_true(t->allows(*bob, "*"));
    assert_true(t->allows(*bob, "sp ce"));
    assert_false(t->allows(*bob, ""));
    assert_false(t->allows(*bob, "bob"));
    assert_false(t->allows(*bob, "alic"));
    assert_false(t->allows(*bob, "alicee"));
    assert_true(t->allows(*dave, "bob"));
    assert_false(t->allows(*dave, "bob#comment"));
    // Unlisted peers: "*" and "sp ce" (alice and bob are in the file).
    std::set<std::string> unlisted;
    t->for_each_unlisted_peer([&](const AuthEntry& e, std::string_view peer) {
        assert_true(e.id == "bob");
        unlisted.insert(std::string(peer));
    });
    assert_true((unlisted == std::set<std::string>{"*", "sp ce"}));
    // An empty file, or one of comments, is a valid empty table.
    assert_int_equal(parse("")->size(), 0);
    assert_int_equal(parse("# nothing\n\n")->size(), 0);
}

void test_parse_errors(void**) {
    std::string v = verifier("t");
    expect_error("alice\n", "auth.txt:1: missing verifier");
    expect_error("\n\nalice " + v.substr(1) + "\n", "auth.txt:3: bad verifier");
    expect_error("alice " + v + " * extra\n", "auth.txt:1: too many fields");
    expect_error("al\\ice " + v + "\n", "auth.txt:1: bad id: a backslash must start \\xNN");
    expect_error("a,b " + v + "\n", "auth.txt:1: bad id");
    expect_error("\\x00" + std::string(255, 'x') + " " + v + "\n", "id longer than 255 bytes");
    expect_error("x " + v + " a,,b\n", "auth.txt:1: empty id in PEERS");
    expect_error("x " + v + " ,a\n", "empty id in PEERS");
    expect_error("x " + v + " a,\n", "empty id in PEERS");
    expect_error("x " + v + " a,*\n", "\"*\" stands alone in PEERS");
    expect_error("x " + v + " a,b\\\n", "auth.txt:1: bad peer id");
    expect_error("x " + v + "\ny " + v + "\n# c\nx " + v + " *\n",
                 "auth.txt:4: \"x\" is listed twice (first on line 1)");
    // An id that differs only in escapes is the same id.
    expect_error("x " + v + "\n\\x78 " + v + "\n", "auth.txt:2: \"x\" is listed twice");
}

void test_parse_bounds(void**) {
    std::string v = verifier("t");
    // 65536 bytes is a line; one more is too long.
    std::string line = "x " + v + " ";
    std::string peers;
    while (line.size() + peers.size() + 2 <= kAuthFileMaxLine) peers += "p,";
    peers += std::string(kAuthFileMaxLine - line.size() - peers.size(), 'q');
    assert_int_equal((line + peers).size(), kAuthFileMaxLine);
    std::unique_ptr<AuthTable> t = parse(line + peers + "\n");
    assert_true(t != nullptr);
    expect_error(line + peers + "q\n", "auth.txt:1: line longer than 65536 bytes");
    // 1000000 lines; one more is too many.
    std::string lines(kAuthFileMaxLines, '\n');
    assert_true(parse(lines) != nullptr);
    expect_error(lines + "\n", "auth.txt: more than 1000000 lines");
    // The size bound holds whatever the text.
    std::string huge(kAuthFileMaxBytes + 1, '#');
    expect_error(huge, "auth.txt: larger than 16777216 bytes");
}

// PEERS of 2000 ids, given in a shuffled order: lookups agree with a set.
void test_peer_lookup_model(void**) {
    std::set<std::string> members;
    std::string list;
    uint32_t x = 12345;
    for (int i = 0; i < 2000; ++i) {
        x = x * 1103515245u + 12345u;
        std::string id = "d" + std::to_string(x % 100000);
        members.insert(id);
        if (!list.empty()) list += ',';
        list += id;
    }
    std::unique_ptr<AuthTable> t = parse("target " + verifier("t") + " " + list + "\n");
    assert_true(t != nullptr);
    const AuthEntry* e = t->find("target");
    for (int i = 0; i < 100000; ++i) {
        std::string id = "d" + std::to_string(i);
        assert_int_equal(t->allows(*e, id), members.count(id) == 1);
    }
    assert_false(t->allows(*e, "d"));
    assert_false(t->allows(*e, ""));
}

// What the table costs: under 3.5 bytes of heap a byte of file for a file
// of the smallest peers ("a,": 2 bytes of arena and 4 of index for each),
// and under 1.5 for one of devices alone (the verifier text is not kept).
void test_memory_bound(void**) {
    std::string v = verifier("t");
    std::string peers_file;
    std::string line = "x0 " + v + " ";
    std::string list;
    while (line.size() + list.size() + 3 < kAuthFileMaxLine) list += "a,";
    list += "a";
    for (int i = 0; i < 64; ++i) peers_file += "x" + std::to_string(i) + " " + v + " " + list + "\n";
    std::unique_ptr<AuthTable> t = parse(peers_file);
    assert_true(t != nullptr);
    double ratio = static_cast<double>(t->memory_bytes()) / static_cast<double>(peers_file.size());
    std::printf("# peers file: %zu bytes, table %zu bytes (%.2f a byte)\n", peers_file.size(),
                t->memory_bytes(), ratio);
    assert_true(ratio < 3.5);

    std::string devices_file;
    for (int i = 0; i < 20000; ++i) devices_file += "device-" + std::to_string(i) + " " + v + "\n";
    t = parse(devices_file);
    assert_true(t != nullptr);
    ratio = static_cast<double>(t->memory_bytes()) / static_cast<double>(devices_file.size());
    std::printf("# devices file: %zu bytes, %zu devices, table %zu bytes (%.2f a byte)\n",
                devices_file.size(), t->size(), t->memory_bytes(), ratio);
    assert_true(ratio < 1.5);
}

// ---- the file ------------------------------------------------------------------------

struct TempDir {
    char path[64] = "/tmp/p2p-auth-unit-XXXXXX";
    TempDir() { assert_non_null(mkdtemp(path)); }
    ~TempDir() { rmdir(path); }
    std::string file(const char* name) const { return std::string(path) + "/" + name; }
};

void write_file(const std::string& path, const std::string& text, mode_t mode) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd != -1);
    assert_int_equal(fchmod(fd, mode), 0);
    assert_int_equal(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
    assert_int_equal(close(fd), 0);
}

// Runs load_auth_file with stderr (the log) captured into *log.
std::unique_ptr<AuthTable> load(const std::string& path, std::string* err, std::string* log) {
    char tmpl[] = "/tmp/p2p-auth-log-XXXXXX";
    int logfd = mkstemp(tmpl);
    assert_true(logfd != -1);
    unlink(tmpl);
    std::fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved != -1);
    assert_true(dup2(logfd, STDERR_FILENO) != -1);
    char buf[1024] = "";
    std::unique_ptr<AuthTable> t = load_auth_file(path.c_str(), kKey, buf, sizeof buf);
    assert_true(dup2(saved, STDERR_FILENO) != -1);
    close(saved);
    *err = buf;
    log->clear();
    char chunk[4096];
    ssize_t n;
    lseek(logfd, 0, SEEK_SET);
    while ((n = read(logfd, chunk, sizeof chunk)) > 0) log->append(chunk, static_cast<size_t>(n));
    close(logfd);
    return t;
}

void test_load_file(void**) {
    TempDir dir;
    std::string err, log;
    std::string path = dir.file("auth");
    assert_true(load(path, &err, &log) == nullptr);
    assert_true(err == path + ": No such file or directory");

    write_file(path, "alice " + verifier("A") + " bob\n", 0600);
    std::unique_ptr<AuthTable> t = load(path, &err, &log);
    assert_true(t != nullptr);
    assert_int_equal(t->size(), 1);
    assert_true(log.find("chmod") == std::string::npos);
    assert_true(log.find("peer \"bob\" of \"alice\" is not in the file") != std::string::npos);

    assert_int_equal(chmod(path.c_str(), 0604), 0);
    assert_true(load(path, &err, &log) != nullptr);
    assert_true(log.find("may be read by group or others (mode 0604)") != std::string::npos);
    assert_int_equal(chmod(path.c_str(), 0620), 0);
    assert_true(load(path, &err, &log) != nullptr);
    assert_true(log.find("may be written by group or others (mode 0620)") != std::string::npos);

    write_file(path, "alice\n", 0600);
    assert_true(load(path, &err, &log) == nullptr);
    assert_true(err == path + ":1: missing verifier (expected ID VERIFIER [PEERS])");

    // Larger than the bound: refused from its size, without reading it.
    int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    assert_true(fd != -1);
    assert_int_equal(ftruncate(fd, static_cast<off_t>(kAuthFileMaxBytes) + 1), 0);
    close(fd);
    assert_true(load(path, &err, &log) == nullptr);
    assert_true(err == path + ": larger than 16777216 bytes");
    unlink(path.c_str());

    assert_true(load(dir.path, &err, &log) == nullptr);
    assert_true(err == std::string(dir.path) + ": not a regular file");

    // A FIFO with no writer: opening it must not wait.
    std::string fifo = dir.file("fifo");
    assert_int_equal(mkfifo(fifo.c_str(), 0600), 0);
    assert_true(load(fifo, &err, &log) == nullptr);
    assert_true(err == fifo + ": not a regular file");
    unlink(fifo.c_str());
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64url_vectors), cmocka_unit_test(test_base64url_refuses),
        cmocka_unit_test(test_id_escapes),        cmocka_unit_test(test_verifiers),
        cmocka_unit_test(test_parse_features),    cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_bounds),      cmocka_unit_test(test_peer_lookup_model),
        cmocka_unit_test(test_memory_bound),      cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
