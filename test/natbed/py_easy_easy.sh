#!/bin/sh
# py_easy_easy.sh - easy_easy.sh with the Python client as alice: a Python
# device (pypeer.py) behind one port-preserving NAT and a C device
# (natpeer) behind another punch a direct path through both (TCP
# simultaneous open from their relay connections' ports), and the relay
# delivers none of the 200 messages the Python device then sends.
NB_ALICE=python exec sh "$(dirname "$0")/easy_easy.sh"
