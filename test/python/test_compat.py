"""Every method of the compatibility face, with the original's values:
1 success, 0 failure, 0xff no reply; recvData() -> list of lists of ints."""

import unittest

from p2p_support import FakeV1Server, ServerCase, free_port, wait_until
import stupidp2p
from stupidp2p import stupidP2PClient


class CompatTest(ServerCase):
    def make(self, *args, **options):
        c = stupidP2PClient("127.0.0.1", self.server.port, *args, **options)
        self.addCleanup(c.deinitClient)
        return c

    def started(self, device_id=None):
        c = self.make()
        self.assertIs(c.initClient(), True)
        if device_id is not None:
            self.assertEqual(c.registerDevice(device_id), 1)
        return c

    def test_original_import_is_the_same_class(self):
        from stupidP2P import stupidP2PClient as original_name
        self.assertIs(original_name, stupidP2PClient)
        self.assertIs(stupidp2p.stupidP2PClient, stupidP2PClient)

    def test_init_and_deinit(self):
        c = self.make()
        self.assertEqual(c.runningFlag, 0)
        self.assertIs(c.initClient(), True)
        self.assertEqual(c.runningFlag, 1)
        self.assertIs(c.initClient(), True)  # already running: no new socket
        c.deinitClient()
        self.assertEqual(c.runningFlag, 0)
        c.deinitClient()  # idempotent
        bad = stupidP2PClient("127.0.0.1", free_port())
        self.assertIs(bad.initClient(), False)
        self.assertEqual(bad.registerDevice("x"), 0)

    def test_calls_before_init_fail_with_zero(self):
        c = self.make()
        self.assertEqual(c.registerDevice(self.uid("x")), 0)
        self.assertEqual(c.subscribeDevice("y"), 0)
        self.assertEqual(c.sendData("z"), 0)
        self.assertEqual(c.unregisterDevice(), 0)
        self.assertEqual(c.unscribeDevice("y"), 0)
        self.assertEqual(c.unsubscribeDevice("y"), 0)
        self.assertEqual(c.checkDeviceAlive("y"), 0)
        self.assertEqual(c.recvData(), [])

    def test_register(self):
        c = self.started()
        self.assertEqual(c.registerDevice(self.uid("me")), 1)
        self.assertEqual(c.deviceId, self.uid("me"))
        self.assertEqual(c.registerDevice(""), 0)

    def test_device_id_in_constructor(self):
        # An early version of the original took the id in the constructor.
        c = self.make(self.uid("early"))
        self.assertTrue(c.initClient())
        self.assertEqual(c.registerDevice(), 1)
        self.assertEqual(self.started().checkDeviceAlive(self.uid("early")), 1)

    def test_subscribe_send_recv(self):
        pub = self.started(self.uid("pub"))
        sub = self.started(self.uid("sub"))
        self.assertEqual(sub.subscribeDevice(self.uid("pub")), 1)
        self.assertEqual(sub.subscribeDevice(self.uid("sub")), 0)  # own id
        self.assertEqual(pub.sendData("hello"), 1)
        self.assertEqual(pub.sendData(b"\x00\xffbytes"), 1)
        self.assertEqual(pub.sendData(""), 0)
        self.assertEqual(pub.sendData(b""), 0)
        got = []
        self.assertTrue(wait_until(
            lambda: got.extend(sub.recvData()) or len(got) >= 2, 5))
        self.assertEqual(got, [list(b"hello"), list(b"\x00\xffbytes")])
        self.assertTrue(all(isinstance(x, int) for x in got[0]))
        self.assertEqual(str(bytes(got[0]), encoding="UTF-8"), "hello")
        self.assertEqual(sub.recvData(), [])

    def test_offline_subscription_by_protocol_version(self):
        # v2 accepts a subscription to an offline device; asking for v1
        # gives exactly the original protocol, which refuses it.
        self.assertEqual(self.started().subscribeDevice(self.uid("off")), 1)
        v1 = self.make(version=1)
        self.assertTrue(v1.initClient())
        self.assertEqual(v1.client.protocol_version, 1)
        self.assertEqual(v1.subscribeDevice(self.uid("off")), 0)

    def test_unsubscribe_both_spellings(self):
        pub = self.started(self.uid("pub"))
        sub = self.started(self.uid("sub"))
        self.assertEqual(sub.subscribeDevice(self.uid("pub")), 1)
        self.assertEqual(sub.unscribeDevice(self.uid("pub")), 1)
        self.assertEqual(sub.unsubscribeDevice(self.uid("pub")), 1)
        self.assertEqual(pub.sendData("unseen"), 1)
        # A marker through a fresh subscription proves nothing came before.
        self.assertEqual(sub.subscribeDevice(self.uid("pub")), 1)
        self.assertEqual(pub.sendData("marker"), 1)
        got = []
        self.assertTrue(wait_until(
            lambda: got.extend(sub.recvData()) or got, 5))
        self.assertEqual(got, [list(b"marker")])

    def test_unregister(self):
        c = self.started(self.uid("me"))
        other = self.started()
        self.assertEqual(other.checkDeviceAlive(self.uid("me")), 1)
        self.assertEqual(c.unregisterDevice(), 1)
        self.assertEqual(other.checkDeviceAlive(self.uid("me")), 0)
        # v2 says "not registered" (status 2): the compat face says 0.
        self.assertEqual(c.sendData("x"), 0)

    def test_check_alive(self):
        c = self.started()
        self.assertEqual(c.checkDeviceAlive(self.uid("nobody")), 0)
        self.started(self.uid("somebody"))
        self.assertEqual(c.checkDeviceAlive(self.uid("somebody")), 1)

    def test_oversize_send_fails_without_losing_the_connection(self):
        c = self.started(self.uid("me"))
        self.assertEqual(c.sendData(b"x" * 65536), 0)
        self.assertEqual(c.sendData(b"x" * 65535), 1)

    def test_restart_client(self):
        c = self.started(self.uid("me"))
        self.assertIs(c.restartClient(), True)
        self.assertEqual(c.runningFlag, 1)
        self.assertEqual(c.checkDeviceAlive(self.uid("me")), 0)

    def test_underlying_client(self):
        c = self.started(self.uid("me"))
        self.assertIsInstance(c.client, stupidp2p.Client)
        self.assertEqual(c.client.device_id, self.uid("me"))


class CompatNoReplyTest(unittest.TestCase):
    """0xff: a server that accepts but stops answering."""

    def test_no_reply_is_0xff(self):
        with FakeV1Server() as srv:
            c = stupidP2PClient("127.0.0.1", srv.port, timeout=0.3)
            self.addCleanup(c.deinitClient)
            self.assertTrue(c.initClient())
            self.assertEqual(c.registerDevice("me"), 1)
            srv.mute = True
            self.assertEqual(c.checkDeviceAlive("me"), 0xFF)
            self.assertEqual(c.sendData("x"), 0xFF)


if __name__ == "__main__":
    unittest.main()
