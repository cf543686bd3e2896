/*
 * stupidp2p.h - the stupidP2P C client library (libstupidp2p.a).
 *
 * A handle is one connection to one relay server, kept alive by one
 * background thread: it sends heartbeats, notices a dead or closed
 * connection, reconnects with exponential backoff and, before it reports
 * itself connected again, registers the device id again and renews every
 * subscription. The application only sees commands that answer, messages
 * that arrive, and (if it asks) callbacks.
 *
 * Two layers share one handle:
 *
 *  - The ORIGINAL API (stupid_p2p_init ... stupid_p2p_free_recv_data_buf),
 *    with the original names, signatures and error values, so that programs
 *    written for the original stupidP2P compile and run unchanged. Ids are
 *    NUL-terminated strings. Every failure the server reports is
 *    STUPID_P2P_ERROR_COMMOND, whatever reason it gave.
 *
 *  - ADDITIONS (stupid_p2p_init_ex ... stupid_p2p_strerror): an options
 *    struct, ids as (pointer, length) byte strings, the server's failure
 *    reason as its own error code, the sender id of every message (protocol
 *    v2), sending to one device, a blocking receive with a timeout,
 *    callbacks for messages, presence, connection state and logging,
 *    device tokens: ids claimed with AUTH, the token never on the wire
 *    (stupid_p2p_register), and the slow-consumer policy: when the client
 *    falls behind, the server may drop messages and say how many
 *    (slow_consumer, on_gap) instead of disconnecting it.
 *
 * Build and link:  cc app.c -Iinclude libstupidp2p.a -lpthread
 *
 * Threads. Every function may be called from any thread, on one handle from
 * several threads at once; each caller gets the reply to its own request.
 * Callbacks run on the handle's background thread: they may call the
 * non-blocking functions (stupid_p2p_recv_data, stupid_p2p_get_state,
 * stupid_p2p_get_stats, stupid_p2p_strerror, and even stupid_p2p_deinit of
 * their own handle) but a command that waits for the server (register,
 * send, ...) returns STUPID_P2P_WRONG_THREAD there, since the thread that
 * would read its reply is the caller.
 *
 * Process. The library installs no signal handler (it writes with
 * MSG_NOSIGNAL), prints nothing (see the log callback) and keeps no
 * global state beyond the table of open handles.
 *
 * Errors are negative int32_t codes (below); stupid_p2p_strerror names them.
 * errno is never part of the interface. The manual is stupidp2p(3).
 */
#ifndef STUPIDP2P_H
#define STUPIDP2P_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* the original header included it; _log below uses it */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- error codes ---------------------------------------------------------
 * The original's values: STUPID_P2P_ERROR_COMMOND is 0x80000001 read as an
 * int32_t, and the next ones follow it. They are written as negative
 * numbers so that every enumerator fits in an int (ISO C) and compares
 * with an int32_t result without a sign conversion. */
enum {
    STUPID_P2P_NO_ERROR = 0,
    STUPID_P2P_ERROR_COMMOND = -0x7fffffff,  /* 0x80000001: the server said
                                                no, or an unknown handle  */
    STUPID_P2P_BAD_PARAM = -0x7ffffffe,      /* 0x80000002                */
    STUPID_P2P_MEMORY_ERROR = -0x7ffffffd,   /* 0x80000003                */
    STUPID_P2P_RESTARTING = -0x7ffffffc,     /* 0x80000004: not connected
                                                now; reconnecting          */
    STUPID_P2P_NET_ERROR = -0x7ffffffb,      /* 0x80000005: no connection
                                                could be made, or no reply */
    /* Additions (new calls only, plus the few noted in the manual). */
    STUPID_P2P_ERROR_COMMAND = STUPID_P2P_ERROR_COMMOND, /* spelled right */
    STUPID_P2P_TIMEOUT = -0x7ffffffa,        /* no reply / no message in time */
    STUPID_P2P_NOT_REGISTERED = -0x7ffffff9, /* v2 reason 2: hold an id first */
    STUPID_P2P_OFFLINE = -0x7ffffff8,        /* v2 reason 3: target offline  */
    STUPID_P2P_BAD_ARGUMENT = -0x7ffffff7,   /* v2 reason 4: server refused
                                                the argument (own id, ...)  */
    STUPID_P2P_NOT_AUTHORIZED = -0x7ffffff6, /* v2 reason 5                  */
    STUPID_P2P_UNSUPPORTED = -0x7ffffff5,    /* v2 reason 6, or the server
                                                speaks only v1              */
    STUPID_P2P_LIMIT = -0x7ffffff4,          /* v2 reason 7: a server limit  */
    STUPID_P2P_CLOSED = -0x7ffffff3,         /* the handle was deinitialised
                                                while the call waited       */
    STUPID_P2P_WRONG_THREAD = -0x7ffffff2,   /* blocking call from a callback */
    STUPID_P2P_PROTOCOL_ERROR = -0x7ffffff1  /* the server broke the protocol:
                                                a wrong AUTH signature (it
                                                is not who it claims)       */
};

/* Returns a static English description of an error code above (never NULL;
 * "unknown error" for other values). Any thread. */
const char *stupid_p2p_strerror(int32_t code);

/* ---- the original API ----------------------------------------------------
 * Handles are positive int32_t values, never reused within a process.
 * Unless noted, functions return STUPID_P2P_NO_ERROR or a negative code:
 *   STUPID_P2P_BAD_PARAM       handle <= 0, NULL or over-long (> 255
 *                              bytes) id, bad length (an empty id goes to
 *                              the server, which refuses it, as before)
 *   STUPID_P2P_ERROR_COMMOND   unknown handle, or the server answered
 *                              failure (for any reason)
 *   STUPID_P2P_RESTARTING      not connected at the moment (reconnecting)
 *   STUPID_P2P_NET_ERROR       no reply within the command timeout, or the
 *                              connection was lost before the reply
 *   STUPID_P2P_MEMORY_ERROR    out of memory
 *   STUPID_P2P_CLOSED, STUPID_P2P_WRONG_THREAD   (see above)
 * Each command waits for its own reply and returns as soon as it arrives. */

/* Connects to server_ip (a NUL-terminated IPv4 or IPv6 literal, or a host
 * name) on server_port, with default options. Returns a positive handle
 * once the first connection is made and negotiated, or NET_ERROR when it
 * cannot be made (BAD_PARAM for a bad address or port), leaking nothing;
 * stupid_p2p_connect_error(0) then says why. A host name is resolved
 * within connect_timeout_ms. Reconnection starts only after a successful
 * init. */
int32_t stupid_p2p_init(const uint8_t *server_ip, const int32_t server_port);

/* Closes the handle: wakes every call waiting on it (they return
 * STUPID_P2P_CLOSED), joins the background thread and frees everything,
 * including messages still queued. Unknown handles are ignored. No
 * callback of the handle runs once deinit has returned, also when it was
 * called from one of them (the thread then stops dispatching, finishes
 * and frees the handle itself after that callback returns). deinit never
 * waits for a host name lookup: one in progress is abandoned. Messages
 * sent on a direct path and not yet acknowledged by the peer are given
 * command_timeout_ms to be (not when deinit is called from a callback). */
void stupid_p2p_deinit(int32_t fd);

/* REGISTER: binds the NUL-terminated device_id (1..255 bytes) to this
 * connection. The library remembers it and registers it again after every
 * reconnect. A second id replaces the first. With a token set (the token
 * option, stupid_p2p_set_token), the id is claimed with AUTH instead, and
 * this call may also return NOT_AUTHORIZED, UNSUPPORTED and PROTOCOL_ERROR
 * (see stupid_p2p_register). */
int32_t stupid_p2p_register_device(const int32_t fd, const uint8_t *device_id);

/* SUBSCRIBE: messages sent by device_id will be received here. Remembered
 * and renewed after every reconnect. On a v1 server it fails while the
 * device is offline (v2 servers accept it). */
int32_t stupid_p2p_subscribe_device(const int32_t fd, const uint8_t *device_id);

/* SEND: buf[0..length) to every subscriber of this device's id. 0 <= length
 * <= the server's max_frame - 1 (65535 by default); longer: BAD_PARAM. The
 * data is copied before the call returns; buf is not modified. */
int32_t stupid_p2p_send_data(const int32_t fd, uint8_t *buf, int32_t length);

/* UNREGISTER: releases the id; the server also cancels this connection's
 * subscriptions, and the library forgets both. */
int32_t stupid_p2p_unregister_device(const int32_t fd);

/* UNSUBSCRIBE: idempotent. */
int32_t stupid_p2p_unsubscribe_device(const int32_t fd, const uint8_t *device_id);

/* CHECK_ALIVE: NO_ERROR if device_id is online, ERROR_COMMOND if not. */
int32_t stupid_p2p_check_device_alive(const int32_t fd, const uint8_t *device_id);

/* HEARTBEAT: a round trip to the server (the library sends its own
 * heartbeats; calling this is never needed). */
int32_t stupid_p2p_heart_beat(const int32_t fd);

typedef struct {
    int32_t length;   /* bytes in data                                    */
    uint8_t *data;    /* length bytes, followed by a NUL the original did
                         not promise                                      */
} recv_data_t;

typedef struct {
    int32_t num;              /* number of messages (may be 0)            */
    recv_data_t **recv_data;  /* num pointers                             */
} recv_data_buf_t;

/* Takes every message waiting in the receive queue (up to 1024 per call),
 * oldest first, without waiting. Returns NULL for an unknown handle or out
 * of memory, otherwise a buffer (num may be 0) that the caller owns and
 * frees with stupid_p2p_free_recv_data_buf. Messages handed to a message
 * callback are not queued. */
recv_data_buf_t *stupid_p2p_recv_data(const int32_t fd);

/* Frees a buffer from stupid_p2p_recv_data, completely. NULL is ignored. */
void stupid_p2p_free_recv_data_buf(recv_data_buf_t *recv_data_buf);

/* ---- additions: options and callbacks ------------------------------------ */

/* Connection states, as reported by stupid_p2p_get_state and the state
 * callback. */
typedef enum {
    STUPID_P2P_STATE_CONNECTING = 1,   /* connecting, negotiating, restoring
                                          the id and subscriptions         */
    STUPID_P2P_STATE_CONNECTED = 2,    /* commands are accepted            */
    STUPID_P2P_STATE_DISCONNECTED = 3, /* lost; waiting to reconnect       */
    STUPID_P2P_STATE_CLOSED = 4        /* deinitialised                    */
} stupid_p2p_state_t;

/* Why a connection ended (state callback, stats). 1..7 are the server's BYE
 * reasons (protocol v2), with the wire values. */
typedef enum {
    STUPID_P2P_CAUSE_NONE = 0,
    STUPID_P2P_CAUSE_TAKEN_OVER = 1,     /* another connection took our id;
                                            the library takes it back after
                                            a backoff (takeover_retries)   */
    STUPID_P2P_CAUSE_IDLE_TIMEOUT = 2,
    STUPID_P2P_CAUSE_SLOW_CONSUMER = 3,
    STUPID_P2P_CAUSE_SERVER_SHUTDOWN = 4,
    STUPID_P2P_CAUSE_PROTOCOL_ERROR = 5, /* the server said we erred        */
    STUPID_P2P_CAUSE_NOT_AUTHORIZED = 6, /* BYE 6 (DISCONNECTED); with
                                            CONNECTED: the id could not be
                                            authenticated again after a
                                            reconnect and was given up     */
    STUPID_P2P_CAUSE_LIMIT = 7,
    STUPID_P2P_CAUSE_EOF = 16,           /* closed without a word           */
    STUPID_P2P_CAUSE_IO_ERROR = 17,      /* reset, or another socket error  */
    STUPID_P2P_CAUSE_HEARTBEAT_LOST = 18,/* heartbeats went unanswered      */
    STUPID_P2P_CAUSE_BAD_FRAME = 19,     /* the server sent something wrong:
                                            malformed, over max_frame_limit,
                                            a nonsense HELLO grant         */
    STUPID_P2P_CAUSE_CONNECT_FAILED = 20,/* a reconnect attempt failed      */
    STUPID_P2P_CAUSE_DEINIT = 21,
    STUPID_P2P_CAUSE_ID_LOST = 22        /* the id was taken over more than
                                            takeover_retries times in a row:
                                            the library gave it up (with
                                            STUPID_P2P_STATE_CONNECTED)     */
} stupid_p2p_cause_t;

/* Log levels for the log callback. */
typedef enum {
    STUPID_P2P_LOG_ERROR = 0,
    STUPID_P2P_LOG_WARNING = 1,
    STUPID_P2P_LOG_INFO = 2,
    STUPID_P2P_LOG_DEBUG = 3
} stupid_p2p_log_level_t;

/* A message arrived. sender is the sending device's id (sender_len bytes,
 * 1..255; followed by a NUL) on a v2 connection, or NULL with sender_len 0
 * on v1. data holds len bytes (followed by a NUL). Both pointers are valid
 * only during the call: copy what you keep. */
typedef void (*stupid_p2p_message_cb)(int32_t handle, const uint8_t *sender,
                                      size_t sender_len, const uint8_t *data,
                                      size_t len, void *user_data);

/* A subscribed device went online (online = 1) or offline (0). v2 only:
 * sent once for every successful subscribe, then on every change. */
typedef void (*stupid_p2p_presence_cb)(int32_t handle, const uint8_t *id,
                                       size_t id_len, int online,
                                       void *user_data);

/* The server dropped messages for this connection and says so (protocol
 * v2, slow_consumer STUPID_P2P_SLOW_DROP in force; stupidp2p(7), GAP):
 * frames messages with bytes data bytes from the device publisher
 * (publisher_len bytes, 1..255, followed by a NUL), or, with publisher
 * NULL and publisher_len 0, from all the devices not named in the other
 * GAPs of the same episode. Both counts stop at their largest value
 * rather than wrap. Called in stream order with on_message: every message
 * received before the call came before the missing ones, every one after
 * it after them. The pointer is valid only during the call. */
typedef void (*stupid_p2p_gap_cb)(int32_t handle, const uint8_t *publisher,
                                  size_t publisher_len, uint32_t frames,
                                  uint64_t bytes, void *user_data);

/* What the server does when this client reads slower than messages arrive
 * for it (the slow_consumer option; stupidp2p(7), SLOW CONSUMERS). */
typedef enum {
    STUPID_P2P_SLOW_DISCONNECT = 0, /* it closes the connection (BYE 3); the
                                       library reconnects                  */
    STUPID_P2P_SLOW_DROP = 1        /* it drops whole messages for it and,
                                       once it has caught up, says how many
                                       (on_gap); the connection stays      */
} stupid_p2p_slow_consumer_t;

/* The connection state changed; cause says why it ended (DISCONNECTED), or
 * is STUPID_P2P_CAUSE_ID_LOST for a CONNECTED without the id the library
 * gave up (see takeover_retries), STUPID_P2P_CAUSE_NOT_AUTHORIZED for a
 * CONNECTED without the id because its AUTH failed (see
 * stupid_p2p_register), or STUPID_P2P_CAUSE_NONE. Called once per
 * failed reconnect attempt too (DISCONNECTED, CONNECT_FAILED). Not called
 * for the first connection made by init, nor for CLOSED, nor once deinit
 * has begun. */
typedef void (*stupid_p2p_state_cb)(int32_t handle, stupid_p2p_state_t state,
                                    stupid_p2p_cause_t cause, void *user_data);

/* One line of log, without a newline. Unlike the others this callback may
 * run on any library thread, with internal locks held: it must not call
 * this library. */
typedef void (*stupid_p2p_log_cb)(int32_t handle, stupid_p2p_log_level_t level,
                                  const char *message, void *user_data);

/* Direct paths (stupidp2p(3), DIRECT PATHS): the path a device's send_to's
 * to one peer take, reported by stupid_p2p_path and the path callback. */
typedef enum {
    STUPID_P2P_PATH_RELAY = 1,  /* through the relay server               */
    STUPID_P2P_PATH_DIRECT = 2  /* on a TCP connection between the two
                                   devices, punched through their NATs or
                                   made across their LAN                   */
} stupid_p2p_path_t;

/* Values of the direct option. */
enum {
    STUPID_P2P_DIRECT_OFF = 0,    /* decline every offer; paths only where
                                     stupid_p2p_connect_direct asks        */
    STUPID_P2P_DIRECT_ACCEPT = 1, /* accept the offers of peers            */
    STUPID_P2P_DIRECT_AUTO = 2    /* accept, and try a direct path to every
                                     peer this device send_to's            */
};

/* The path of this device's send_to's to peer changed. Runs on the
 * handle's thread, like the other callbacks. */
typedef void (*stupid_p2p_path_cb)(int32_t handle, const uint8_t *peer,
                                   size_t peer_len, stupid_p2p_path_t path,
                                   void *user_data);

/* Options for stupid_p2p_init_ex. Fill with stupid_p2p_options_init, then
 * change what you need. Times are milliseconds. Fields are only ever added
 * at the end: a program built against an older, smaller struct passes its
 * struct_size, and the fields it does not have take their defaults. */
typedef struct {
    uint32_t struct_size;        /* sizeof(stupid_p2p_options_t): set by
                                    stupid_p2p_options_init                */
    int32_t connect_timeout_ms;  /* name lookup, and each address,
                                    per attempt                  (5000)    */
    int32_t command_timeout_ms;  /* wait for a reply              (3000)    */
    int32_t heartbeat_interval_ms; /* heartbeat period            (3000)    */
    int32_t heartbeat_max_missed;  /* reconnect when no reply came
                                    for this many intervals      (3)       */
    int32_t backoff_initial_ms;  /* reconnect delay envelope:     (200)     */
    int32_t backoff_max_ms;      /* doubles per failure up to     (30000),
                                    each delay uniform in [0, envelope]    */
    int32_t recv_queue_max;      /* queued messages at most       (1024)    */
    int32_t recv_queue_max_bytes;/* queued data bytes at most  (16 MiB)     */
    int32_t protocol_version;    /* 2: ask for v2, fall back to v1 (2);
                                    1: never send HELLO                    */
    stupid_p2p_message_cb on_message;   /* NULL: messages are queued       */
    stupid_p2p_presence_cb on_presence; /* NULL: presence is ignored       */
    stupid_p2p_state_cb on_state;       /* NULL: see stupid_p2p_get_state  */
    stupid_p2p_log_cb on_log;           /* NULL: silent                    */
    stupid_p2p_log_level_t log_level;   /* most verbose level passed (INFO) */
    void *user_data;                    /* passed to every callback        */
    /* Added in 0.2 (older structs get the defaults). */
    uint32_t max_frame_limit;    /* the largest max_frame taken from the
                                    server (16 MiB): a larger grant is
                                    clamped, and a frame from the server
                                    larger than this (+256) ends the
                                    connection; 256 .. 1 GiB              */
    int32_t takeover_retries;    /* times the id is taken back after other
                                    connections took it over, in a row,
                                    before it is given up            (1)   */
    /* Added in 0.3 (older structs get the defaults). */
    const char *token;           /* the device's token (NULL): token_len
                                    bytes, 1..256, printable ASCII without
                                    spaces (0x21..0x7e), no terminator
                                    needed. With a token, registering
                                    claims the id with AUTH. Read during
                                    init only: the library keeps the keys
                                    derived from it, never the token or
                                    this pointer (stupid_p2p_set_token)   */
    size_t token_len;            /* bytes at token                  (0)    */
    /* Added in 0.3 (older structs get the defaults). */
    int32_t slow_consumer;       /* the policy asked of the server when this
                                    client falls behind: a
                                    stupid_p2p_slow_consumer_t (DISCONNECT).
                                    DROP needs a server that knows it (v2,
                                    0.3 or later); whether it is in force
                                    on the current connection is the stats'
                                    drop_in_force                          */
    stupid_p2p_gap_cb on_gap;    /* NULL: GAPs are only counted (stats)    */
    /* Added in 0.4 (older structs get the defaults). */
    int32_t direct;              /* STUPID_P2P_DIRECT_OFF, _ACCEPT or _AUTO
                                    (OFF)                                  */
    int32_t direct_keepalive_ms; /* a direct path is pinged this often, and
                                    given up when nothing came for three
                                    times as long; 100 .. 25000   (25000)  */
    stupid_p2p_path_cb on_path;  /* NULL: see stupid_p2p_path             */
} stupid_p2p_options_t;

/* Fills *options with the defaults above. */
void stupid_p2p_options_init(stupid_p2p_options_t *options);

/* stupid_p2p_init with options (NULL: defaults), host a NUL-terminated
 * name or address, port 1..65535. Returns a handle or a negative code
 * (BAD_PARAM for an option out of range, a token included). */
int32_t stupid_p2p_init_ex(const char *host, int32_t port,
                           const stupid_p2p_options_t *options);

/* Sets the device's token for the registrations that follow (the ones the
 * library makes after a reconnect included), replacing the token option
 * or an earlier call: token[0..len), 1..256 printable ASCII bytes without
 * spaces, exactly as written (no line end). NULL or len 0 removes the
 * token: registering uses REGISTER again. The id held now is not touched.
 * The library keeps the keys derived from the token (wiped when replaced
 * and at deinit), never the token itself, and never logs either. Returns
 * NO_ERROR, BAD_PARAM (a token not of that form) or ERROR_COMMAND (unknown
 * handle). Any thread, callbacks included; it does not wait. */
int32_t stupid_p2p_set_token(int32_t handle, const void *token, size_t len);

/* ---- additions: commands with ids as byte strings --------------------------
 * Ids are id[0..id_len), 1..255 arbitrary bytes. These return NO_ERROR or
 * the server's reason as its own code (NOT_REGISTERED, OFFLINE,
 * BAD_ARGUMENT, NOT_AUTHORIZED, UNSUPPORTED, LIMIT; ERROR_COMMAND when the
 * server gave no reason, as a v1 server never does), or a local error as
 * above, with STUPID_P2P_TIMEOUT (not NET_ERROR) when no reply came.
 * NOT_AUTHORIZED also comes from a server with an auth file: for a
 * REGISTER of an id only AUTH may claim, and for a SUBSCRIBE, SEND_TO (or
 * a SEND_TO to a v1 session that does not subscribe to this device) that
 * the target does not allow; check_alive answers 0 (offline) then.
 *
 * Registering with a token (the token option, stupid_p2p_set_token) claims
 * the id with AUTH (stupidp2p(7)): step 1 with a fresh random nonce, and,
 * as soon as the background thread has the server's challenge, step 2
 * with the proof; the token never crosses the wire. The server's
 * signature is checked in constant time. Within one command_timeout_ms,
 * returns:
 *   NO_ERROR          the id is held (and re-authenticated after every
 *                     reconnect, as REGISTER would be repeated);
 *   NOT_AUTHORIZED    the server refused: a wrong token, or an id it does
 *                     not protect (the server closes the connection after
 *                     three refusals on it; the library reconnects and
 *                     keeps the id it held before);
 *   UNSUPPORTED       the server cannot authenticate: it speaks only v1
 *                     (nothing is sent: never a REGISTER in its place), or
 *                     it has no auth file (AUTH answered 8c 06);
 *   PROTOCOL_ERROR    the server's signature is wrong: it does not know the
 *                     id's verifier. The connection is closed (cause
 *                     BAD_FRAME) and made again;
 *   ERROR_COMMAND     the server could not draw a nonce, or this system
 *                     could not (getrandom failed);
 * or another code as above. A refused id is not remembered: the library
 * never repeats a refused AUTH by itself. After a reconnect, the library
 * authenticates the remembered id again; if that fails for any reason but
 * a wrong signature (which ends that connection, to try again after a
 * backoff), it gives the id up, keeps the subscriptions, and reports the
 * next CONNECTED with STUPID_P2P_CAUSE_NOT_AUTHORIZED (also in last_cause):
 * once, never retrying. A BYE 6 that withdraws the id (the server's auth
 * file changed) is handled the same way. */
int32_t stupid_p2p_register(int32_t handle, const void *id, size_t id_len);
int32_t stupid_p2p_unregister(int32_t handle);
int32_t stupid_p2p_subscribe(int32_t handle, const void *id, size_t id_len);
int32_t stupid_p2p_unsubscribe(int32_t handle, const void *id, size_t id_len);

/* Returns 1 if the device is online, 0 if not, or a negative code. */
int32_t stupid_p2p_check_alive(int32_t handle, const void *id, size_t id_len);

/* Sends data[0..len) to every subscriber of this device's id. */
int32_t stupid_p2p_send(int32_t handle, const void *data, size_t len);

/* Sends data[0..len) to the one device id, subscribed or not (protocol v2;
 * STUPID_P2P_UNSUPPORTED against an original server). len is at most
 * max_frame - 2 - id_len. */
int32_t stupid_p2p_send_to(int32_t handle, const void *id, size_t id_len,
                           const void *data, size_t len);

/* Offers a direct path to the device id (protocol v2, a server of 0.4 or
 * later): the two devices try to connect to each other, and once they
 * have, this device's send_to's to it travel on that connection
 * (stupidp2p(3), DIRECT PATHS). Waits for the server's answer to the
 * offer only, then returns; the rest happens in the background, reported
 * by the path callback and stupid_p2p_path. Returns NO_ERROR (the offer
 * is on its way, or a path exists or is being made already), OFFLINE,
 * NOT_AUTHORIZED (the two devices may not reach each other both ways),
 * UNSUPPORTED (a v1 session or peer), LIMIT (the server's rate limit, or
 * this handle already follows 32 peers), NOT_REGISTERED, TIMEOUT, or
 * another code as above. A path that fails or dies is tried again later,
 * with back-off, as long as the handle lives. */
int32_t stupid_p2p_connect_direct(int32_t handle, const void *id, size_t id_len);

/* The path this device's send_to's to id take now: STUPID_P2P_PATH_RELAY
 * or STUPID_P2P_PATH_DIRECT (positive), or a negative code. */
int32_t stupid_p2p_path(int32_t handle, const void *id, size_t id_len);

/* A received message, owned by the caller of stupid_p2p_recv. */
typedef struct {
    size_t sender_len;      /* 0 on a v1 connection (sender unknown)       */
    uint8_t sender[256];    /* sender_len bytes, then a NUL                */
    size_t length;          /* bytes in data                               */
    uint8_t *data;          /* length bytes, then a NUL                    */
} stupid_p2p_message_t;

/* Waits up to timeout_ms (0: do not wait; negative: without limit) for the
 * oldest queued message and hands it over in *message, to be freed with
 * stupid_p2p_message_free. Returns NO_ERROR, STUPID_P2P_TIMEOUT,
 * STUPID_P2P_CLOSED (deinit meanwhile), or another negative code. */
int32_t stupid_p2p_recv(int32_t handle, stupid_p2p_message_t **message,
                        int32_t timeout_ms);

/* Frees a message from stupid_p2p_recv. NULL is ignored. */
void stupid_p2p_message_free(stupid_p2p_message_t *message);

/* Returns the handle's state (positive), or a negative code. */
int32_t stupid_p2p_get_state(int32_t handle);

/* Counters and negotiated values, copied in one consistent snapshot. */
typedef struct {
    uint64_t messages_received; /* delivered to the queue or the callback */
    uint64_t messages_dropped;  /* lost because the queue was full        */
    uint64_t reconnects;        /* connections made after the first       */
    uint32_t queue_length;      /* messages waiting now                   */
    int32_t protocol_version;   /* 1 or 2 on the current/last connection  */
    uint32_t max_frame;         /* largest frame payload we may send      */
    uint32_t server_idle_timeout_s; /* from HELLO; 0 when unknown (v1)    */
    stupid_p2p_cause_t last_cause;  /* why the last connection ended      */
    /* Added in 0.3 (see stupid_p2p_get_stats_ex). */
    int32_t drop_in_force;      /* 1: the current connection has the DROP
                                   policy (slow_consumer asked for it and
                                   the server granted it); 0: a slow
                                   consumer is disconnected (not asked,
                                   not connected, or a server that does not
                                   know DROP: an original, v1 or older v2
                                   server, which refuses or ignores it)   */
    uint64_t gap_events;        /* GAP events received                    */
    uint64_t missed_messages;   /* messages they reported dropped         */
    uint64_t missed_bytes;      /* the data bytes of those (both counts
                                   stop at UINT64_MAX)                    */
} stupid_p2p_stats_t;

/* Fills the first stats_size bytes of *stats, a stupid_p2p_stats_t or the
 * smaller one of an older header (at least the 0.2 fields, up to
 * last_cause): fields are only ever added at the end. Returns NO_ERROR or
 * a negative code (BAD_PARAM for a stats_size below the 0.2 fields). */
int32_t stupid_p2p_get_stats_ex(int32_t handle, stupid_p2p_stats_t *stats, size_t stats_size);

/* Fills *stats. Returns NO_ERROR or a negative code. A macro, so that a
 * program passes the size of the struct it was compiled with; the
 * function of that name (as called by programs built against 0.2 headers,
 * or through a pointer to it) fills the 0.2 fields only. */
int32_t stupid_p2p_get_stats(int32_t handle, stupid_p2p_stats_t *stats);
#define stupid_p2p_get_stats(handle, stats) stupid_p2p_get_stats_ex((handle), (stats), sizeof *(stats))

/* Why the handle's last connection attempt failed, in a few lowercase
 * words ("connection refused", "connect timed out", "host name not
 * found", "connection closed by the server", ...), or NULL when it did not
 * fail or the handle is unknown. With a handle <= 0: why the calling
 * thread's last stupid_p2p_init or stupid_p2p_init_ex failed (NULL after
 * one that succeeded). The string is static. Any thread. */
const char *stupid_p2p_connect_error(int32_t handle);

/* ---- compatibility with the original header -----------------------------
 * The original defined _log(fmt, ...) as printf; programs written for it
 * may use it. Define STUPID_P2P_NO_LEGACY_LOG before including this header
 * to leave the name free. (C++98 has no variadic macros: not there.) */
#if !defined(STUPID_P2P_NO_LEGACY_LOG) && !defined(_log) && \
    (!defined(__cplusplus) || __cplusplus >= 201103L)
#define _log(...) printf(__VA_ARGS__)
#endif

#ifdef __cplusplus
}
#endif

#endif /* STUPIDP2P_H */
