#!/bin/sh
# py_hard_nat.sh - hard_nat.sh with the Python client as alice, behind the
# port-randomising NAT: its attempt fails within its window (reported as
# "not made"), and every one of its 200 messages still arrives at the C
# device, once and in order, through the relay.
NB_ALICE=python exec sh "$(dirname "$0")/hard_nat.sh"
