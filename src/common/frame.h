/*
 * frame.h - the length-prefixed frame codec shared by server and clients.
 *
 * A frame is a 4-byte big-endian length L followed by L payload bytes. This
 * codec knows nothing of sockets or buffers: it encodes a header and finds
 * frames in bytes the caller already holds. It is written in C so that the
 * client library can use it without any C++ runtime; the server links the
 * same object.
 */
#ifndef STUPIDP2P_FRAME_H
#define STUPIDP2P_FRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Result of p2p_frame_parse. */
enum p2p_frame_result {
    P2P_FRAME_COMPLETE = 0,  /* a whole frame is in the buffer              */
    P2P_FRAME_INCOMPLETE = 1,/* more bytes are needed (see need)            */
    P2P_FRAME_TOO_LONG = 2   /* the header announces more than max_payload  */
};

/* One parsed frame: payload points into the caller's buffer. */
struct p2p_frame {
    const uint8_t *payload;  /* L bytes, valid while the buffer is          */
    uint32_t length;         /* L, the payload length (may be 0)            */
    size_t consumed;         /* 4 + L: bytes to drop to reach the next one  */
    size_t need;             /* INCOMPLETE: total bytes the frame needs (4
                                while the header itself is incomplete)      */
};

/* Writes the 4-byte big-endian header for a payload of `length` bytes. */
void p2p_frame_header_encode(uint8_t header[4], uint32_t length);

/* Reads the payload length out of a 4-byte header. */
uint32_t p2p_frame_header_decode(const uint8_t header[4]);

/* Looks for one frame at the start of buf[0..len). A header announcing more
 * than max_payload bytes is TOO_LONG as soon as the header is complete, so a
 * caller never buffers an oversize frame. Never reads past buf + len. */
enum p2p_frame_result p2p_frame_parse(const uint8_t *buf, size_t len,
                                      uint32_t max_payload,
                                      struct p2p_frame *out);

#ifdef __cplusplus
}
#endif

#endif /* STUPIDP2P_FRAME_H */
