/*
 * stupidP2P.h - the original client library's header name.
 *
 * Programs written for the original stupidP2P include "stupidP2P.h"; this
 * header lets them compile unchanged. New code includes <stupidp2p.h>.
 */
#ifndef STUPIDP2P_COMPAT_STUPIDP2P_H
#define STUPIDP2P_COMPAT_STUPIDP2P_H

#include "stupidp2p.h"

#endif /* STUPIDP2P_COMPAT_STUPIDP2P_H */
