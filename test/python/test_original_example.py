"""Programs written for the original client run unchanged.

Two programs in the original's style, each run in its own interpreter with
the original's import (``from stupidP2P import stupidP2PClient``):

* EXAMPLE_FLOW is the original module's own example (``__main__`` of its
  stupidP2P.py): init, register client1, check client2, subscribe, send,
  recvData, unsubscribe with the original's spelling, unregister, deinit;
  it prints each return value.
* WINDOW_FLOW follows the original's chat window (test/main.py) without the
  Qt widgets: a window object per device with the same button handlers, a
  receive thread that calls recvData() every 0.1 s and decodes each message
  with ``str(bytes(data), encoding="UTF-8")``, and the same 0xff / 0 / 1
  checks of every return value.
"""

import unittest

from p2p_support import FakeV1Server, ServerCase, run_python

EXAMPLE_FLOW = r'''
import sys
from stupidP2P import stupidP2PClient

client = stupidP2PClient(sys.argv[1], int(sys.argv[2]))
ret = client.initClient()
print(ret)
if ret:
    print(client.registerDevice("client1"))
    print(client.checkDeviceAlive("client2"))
    print(client.subscribeDevice("clinet2"))
    print(client.sendData("hello"))
    print(client.recvData())
    print(client.unscribeDevice("client2"))
    print(client.unregisterDevice())
    client.deinitClient()
'''

WINDOW_FLOW = r'''
import sys
import time
import threading
from stupidP2P import stupidP2PClient


class clientRecvThread(threading.Thread):
    def __init__(self, clientRecvDataFunc, printFunc):
        super(clientRecvThread, self).__init__()
        self._stop_event = threading.Event()
        self.clientRecvDataFunc = clientRecvDataFunc
        self.printFunc = printFunc

    def stop(self):
        self._stop_event.set()

    def stopped(self):
        return self._stop_event.is_set()

    def run(self):
        while not self.stopped():
            time.sleep(0.1)
            dataList = self.clientRecvDataFunc()
            if len(dataList) > 0:
                for data in dataList:
                    self.printFunc("recv: " + str(bytes(data), encoding="UTF-8"))


class window():
    def __init__(self, name, serverIp, serverPort):
        self.name = name
        self.serverIp = serverIp
        self.serverPort = serverPort
        self.startFlag = 0
        self.shown = []
        self.lock = threading.Lock()

    def printTextBrowser(self, printStr):
        with self.lock:
            self.shown.append(printStr)

    def printTips(self, printStr):
        print(self.name + " " + printStr)

    def checkCommandReturn(self, ret, headerStr):
        if ret == 0xff:
            self.printTips("no reply: " + headerStr)
        elif ret == 0x0:
            self.printTips("fail: " + headerStr)
        elif ret == 0x1:
            self.printTips("ok: " + headerStr)

    def buttonConnectionClicked(self):
        self.client = stupidP2PClient(self.serverIp, self.serverPort)
        ret = self.client.initClient()
        if ret == True:
            self.printTips("connected")
            self.startFlag = 1
        else:
            self.printTips("connect failed")
            return
        self.recvThread = clientRecvThread(self.client.recvData,
                                           self.printTextBrowser)
        self.recvThread.start()

    def buttonRegisterClicked(self, deviceId):
        self.deviceId = deviceId
        self.checkCommandReturn(self.client.registerDevice(self.deviceId),
                                "register")

    def buttoCheckAliveCliecked(self, subscribeId):
        self.checkCommandReturn(self.client.checkDeviceAlive(subscribeId),
                                "alive " + subscribeId)

    def buttonSubscribeCliecked(self, subscribeId):
        self.subscribeId = subscribeId
        self.checkCommandReturn(self.client.subscribeDevice(subscribeId),
                                "subscribe")

    def buttonUnsubscribeCliecked(self):
        self.checkCommandReturn(self.client.unscribeDevice(self.subscribeId),
                                "unsubscribe")

    def buttonUnregisterCliecked(self):
        self.checkCommandReturn(self.client.unregisterDevice(), "unregister")

    def buttonSendDataCliecked(self, sendStr):
        ret = self.client.sendData(sendStr)
        self.checkCommandReturn(ret, "send")
        self.printTextBrowser("sent: " + sendStr)

    def closeEvent(self):
        if self.startFlag == 1:
            self.client.deinitClient()
            self.recvThread.stop()
            self.recvThread.join()
            self.startFlag = 0

    def received(self):
        with self.lock:
            return [s for s in self.shown if s.startswith("recv: ")]


ip, port = sys.argv[1], int(sys.argv[2])
w1 = window("client1", ip, port)
w2 = window("client2", ip, port)
w1.buttonConnectionClicked()
w2.buttonConnectionClicked()
w1.buttonRegisterClicked("client1")
w1.buttoCheckAliveCliecked("client2")
w2.buttonRegisterClicked("client2")
w1.buttoCheckAliveCliecked("client2")
w1.buttonSubscribeCliecked("client2")
w2.buttonSubscribeCliecked("client1")
w1.buttonSendDataCliecked("hello from 1")
w2.buttonSendDataCliecked("你好 from 2")
deadline = time.time() + 10
while time.time() < deadline and not (w1.received() and w2.received()):
    time.sleep(0.1)
print("client1 shows " + repr(w1.received()))
print("client2 shows " + repr(w2.received()))
w2.buttonUnsubscribeCliecked()
w2.buttonUnregisterCliecked()
w1.buttoCheckAliveCliecked("client2")
w1.closeEvent()
w2.closeEvent()
print("closed")
'''

WINDOW_EXPECTED = """\
client1 connected
client2 connected
client1 ok: register
client1 fail: alive client2
client2 ok: register
client1 ok: alive client2
client1 ok: subscribe
client2 ok: subscribe
client1 ok: send
client2 ok: send
client1 shows ['recv: 你好 from 2']
client2 shows ['recv: hello from 1']
client2 ok: unsubscribe
client2 ok: unregister
client1 fail: alive client2
closed
"""


class OriginalExampleTest(ServerCase):
    def run_program(self, code, port):
        result = run_python(code, "127.0.0.1", str(port), timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        return result.stdout

    def test_example_flow_v2_server(self):
        # Subscribing to the offline "clinet2" (sic) succeeds with a v2
        # server: the subscription waits for the device.
        self.assertEqual(self.run_program(EXAMPLE_FLOW, self.server.port),
                         "True\n1\n0\n1\n1\n[]\n1\n1\n")

    def test_example_flow_original_server(self):
        with FakeV1Server() as srv:
            out = self.run_program(EXAMPLE_FLOW, srv.port)
        # The original protocol refuses a subscription to an offline id.
        self.assertEqual(out, "True\n1\n0\n0\n1\n[]\n1\n1\n")

    def test_example_flow_no_server(self):
        with FakeV1Server() as srv:
            port = srv.port
        self.assertEqual(self.run_program(EXAMPLE_FLOW, port), "False\n")

    def test_chat_window_flow(self):
        self.assertEqual(self.run_program(WINDOW_FLOW, self.server.port),
                         WINDOW_EXPECTED)

    def test_chat_window_flow_package_import(self):
        # The other way to run an original program: change only its import.
        code = WINDOW_FLOW.replace("from stupidP2P import stupidP2PClient",
                                   "from stupidp2p import stupidP2PClient")
        self.assertNotEqual(code, WINDOW_FLOW)
        self.assertEqual(self.run_program(code, self.server.port),
                         WINDOW_EXPECTED)

    def test_chat_window_flow_original_server(self):
        with FakeV1Server() as srv:
            out = self.run_program(WINDOW_FLOW, srv.port)
        self.assertEqual(out, WINDOW_EXPECTED)


if __name__ == "__main__":
    unittest.main()
