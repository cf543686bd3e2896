// auth_table.h - the auth file (--auth-file; p2pServer(8), AUTH FILE): which
// device ids are protected, the verifier each one's AUTH proof is checked
// against, and which devices may reach each one.
//
//   # comment                      ('#' starts a comment anywhere)
//   ID VERIFIER [PEERS]            (fields separated by spaces or tabs)
//
// ID is 1..255 bytes, written as they are where they are printable ASCII
// other than '#', ',' and '\', and as \xNN (two hex digits) otherwise; any
// byte may be written \xNN. VERIFIER is the line --hash-token prints:
// p2p-scram-sha256$<StoredKey>$<ServerKey>, each key 32 bytes in base64url
// without padding. PEERS is "*" (any session, registered or not; the
// default) or ids separated by commas without spaces: the only devices that
// may SUBSCRIBE to, SEND_TO and CHECK_ALIVE this one (and so receive its
// PRESENCE). "\x2a" is the id "*".
//
// A table is parsed whole and is immutable afterwards: a reload parses a
// new one and the relay swaps it in (Relay::install_auth), so a file that
// fails to parse changes nothing. The file is bounded (kAuthFileMaxBytes,
// kAuthFileMaxLines, kAuthFileMaxLine) and so is the table: every id it
// keeps takes its length plus one byte of one arena no larger than the
// file, each peer 4 more bytes for its sorted index, each device one entry
// of ~100 bytes and a slot of the id index. Allocation failures are errors,
// never fatal. Not thread-safe (the server has one thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "hash.h"
#include "id_table.h"
#include "protocol.h"
#include "sha256.h"

constexpr size_t kAuthFileMaxBytes = 16u << 20;
constexpr size_t kAuthFileMaxLines = 1000000;
constexpr size_t kAuthFileMaxLine = 65536;

// "p2p-scram-sha256$" + 43 + "$" + 43 characters, and a NUL.
constexpr char kVerifierScheme[] = "p2p-scram-sha256";
constexpr size_t kVerifierTextMax = sizeof kVerifierScheme + 1 + 2 * 43 + 1;
// An id as the auth file writes it: at most 4 characters a byte, and a NUL.
constexpr size_t kEscapedIdMax = 4 * P2P_ID_MAX + 1;

struct AuthVerifier {
    uint8_t stored_key[P2P_SHA256_SIZE];
    uint8_t server_key[P2P_SHA256_SIZE];
};

struct AuthEntry {
    std::string_view id;   // into the table's arena
    AuthVerifier verifier;
    uint32_t line;         // where the file lists it, for messages
    bool any_peer;         // PEERS "*"
    uint32_t peers_begin;  // the entry's range of AuthTable::peers_, sorted
    uint32_t peers_count;

    std::string_view key() const { return id; }
};

class AuthTable {
   public:
    // Parses the text of an auth file. name is the file's name for
    // messages. On failure returns nullptr with "NAME:LINE: reason" (or
    // "NAME: reason") in err.
    static std::unique_ptr<AuthTable> parse(std::string_view text, const char* name,
                                            const HashKey& key, char* err, size_t err_cap);
    ~AuthTable();
    AuthTable(const AuthTable&) = delete;
    AuthTable& operator=(const AuthTable&) = delete;

    size_t size() const { return index_.size(); }
    // Bytes the table holds on the heap.
    size_t memory_bytes() const;

    const AuthEntry* find(std::string_view id) const { return index_.find(id); }

    // Whether a session holding the id caller (empty: a session that holds
    // none) may reach the device of entry: PEERS "*", or caller in PEERS.
    bool allows(const AuthEntry& entry, std::string_view caller) const;

    // Calls fn(const AuthEntry&, std::string_view peer) for each peer id
    // that is not itself in the table (anyone could register it).
    template <class Fn>
    void for_each_unlisted_peer(Fn fn) const {
        for (size_t i = 0; i < entry_count_; ++i)
            for (uint32_t p = 0; p < entries_[i].peers_count; ++p) {
                std::string_view peer = peer_at(entries_[i].peers_begin + p);
                if (find(peer) == nullptr) fn(entries_[i], peer);
            }
    }

   private:
    class Parser;
    explicit AuthTable(const HashKey& key) : index_(key) {}
    // The id stored at arena offset off ([len][bytes]).
    std::string_view peer_at_offset(uint32_t off) const;
    std::string_view peer_at(size_t i) const { return peer_at_offset(peers_[i]); }

    uint8_t* arena_ = nullptr;  // [len][bytes] per id
    size_t arena_cap_ = 0;
    size_t arena_used_ = 0;
    AuthEntry* entries_ = nullptr;
    size_t entry_count_ = 0;
    size_t entry_cap_ = 0;
    uint32_t* peers_ = nullptr;  // arena offsets of peer ids
    size_t peer_count_ = 0;
    size_t peer_cap_ = 0;
    IdTable<AuthEntry> index_;
};

// Reads an id written as in the auth file (see above) into out. Returns its
// length, 1..P2P_ID_MAX, or 0 with *why set to the reason.
size_t auth_id_unescape(std::string_view text, uint8_t* out, const char** why);

// Writes id as the auth file spells it, canonically: \xNN (lower-case) for
// space and control bytes, '#', ',', '\', and bytes 0x7f and above; a lone
// "*" as \x2a, so that the result is valid in PEERS too. out holds
// kEscapedIdMax bytes; NUL-terminated; returns the length.
size_t auth_id_escape(std::string_view id, char* out);

// The verifier of token[0..len): its StoredKey and ServerKey (auth_proof.h).
void auth_verifier_from_token(const void* token, size_t len, AuthVerifier* out);

// The VERIFIER field: parse (exact, canonical base64url) and format
// (kVerifierTextMax bytes, NUL-terminated).
bool auth_verifier_parse(std::string_view text, AuthVerifier* out);
void auth_verifier_format(const AuthVerifier& verifier, char* out);
