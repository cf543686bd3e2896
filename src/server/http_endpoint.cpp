// http_endpoint.cpp - see http_endpoint.h.
#include "http_endpoint.h"

#include <sys/epoll.h>

#include <cstdio>
#include <cstring>

#include "log.h"

namespace {

const char* reason_phrase(int status) {
    switch (status) {
        case 200: return "OK";
        case 400: return "Bad Request";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 503: return "Service Unavailable";
        default: return "Error";
    }
}

}  // namespace

HttpEndpoint::~HttpEndpoint() { stop(); }

HttpEndpoint::Client::~Client() {
    if (fd_ != -1) io_close(fd_);
}

bool HttpEndpoint::start(int listen_fd) {
    listen_fd_ = listen_fd;
    return loop_.add(listen_fd_, EPOLLIN | EPOLLET, this);
}

void HttpEndpoint::stop() {
    while (Client* c = clients_.front()) finish(*c);
    while (Client* c = done_.pop_front()) delete c;
    if (listen_fd_ != -1) {
        loop_.remove(listen_fd_);
        io_close(listen_fd_);
        listen_fd_ = -1;
    }
    EventLoop::cancel(*this);
}

void HttpEndpoint::on_events(uint32_t) { accept_clients(); }

void HttpEndpoint::on_iteration_end() {
    while (Client* c = done_.pop_front()) delete c;
}

void HttpEndpoint::on_tick(uint64_t now_ms) {
    for (Client* c = clients_.front(); c != nullptr;) {
        Client* next = clients_.next(*c);
        if (now_ms >= c->deadline_ms_) {
            LOG_DEBUG("metrics: a client took too long; closed");
            finish(*c);
        }
        c = next;
    }
}

void HttpEndpoint::accept_clients() {
    // Bounded like the relay's own accept loop; the rest next iteration.
    for (int i = 0; i < 64; ++i) {
        AcceptResult r = io_accept(listen_fd_);
        if (r.status == IoStatus::would_block) return;
        if (r.status != IoStatus::ok) {
            LOG_WARN("metrics: accept: %s", strerrordesc_np(r.err));
            return;
        }
        if (client_count_ >= kMaxClients) {
            io_close(r.fd);  // over the bound: refused at once
            continue;
        }
        auto* c = new (std::nothrow) Client(*this, r.fd, loop_.now_ms() + kRequestTimeoutMs);
        if (c == nullptr) {
            io_close(r.fd);
            continue;
        }
        if (!loop_.add(r.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, c)) {
            LOG_WARN("metrics: epoll_ctl: %s", strerrordesc_np(errno));
            delete c;
            continue;
        }
        clients_.push_back(*c);
        ++client_count_;
    }
    loop_.defer(*this);
}

void HttpEndpoint::Client::on_events(uint32_t events) {
    if (done_) return;
    if (responding_) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) owner_.write_response(*this);
        return;
    }
    owner_.read_request(*this);
}

void HttpEndpoint::read_request(Client& c) {
    char buf[1024];
    for (;;) {
        IoResult r = io_read(c.fd_, buf, sizeof buf);
        if (r.status == IoStatus::would_block) return;
        if (r.status != IoStatus::ok) {
            finish(c);  // gone before asking, or reset
            return;
        }
        c.in_.append(buf, r.bytes);
        size_t end = c.in_.find("\r\n\r\n");
        if (end == std::string::npos) end = c.in_.find("\n\n");
        if (end != std::string::npos) {
            c.in_.resize(end);
            respond(c, c.in_.c_str());
            return;
        }
        if (c.in_.size() > kMaxRequest) {
            respond(c, nullptr);
            return;
        }
    }
}

// request: the request line and headers, or nullptr for one too large.
void HttpEndpoint::respond(Client& c, const char* request) {
    HttpResponse res;
    bool head = false;
    char method[16] = "", target[512] = "", version[16] = "";
    int fields = request == nullptr ? 0 : std::sscanf(request, "%15s %511s %15s", method, target, version);
    bool well_formed = fields == 3 && std::strncmp(version, "HTTP/1.", 7) == 0 && target[0] == '/';
    ++requests_;
    if (!well_formed) {
        ++bad_requests_;
        res.status = 400;
        res.body = "bad request\n";
    } else if (std::strcmp(method, "GET") != 0 && std::strcmp(method, "HEAD") != 0) {
        res.status = 405;
        res.body = "only GET and HEAD\n";
    } else {
        head = std::strcmp(method, "HEAD") == 0;
        std::string path(target);
        size_t q = path.find('?');
        if (q != std::string::npos) path.resize(q);
        if (!handler_.on_http_get(path, &res)) {
            res = HttpResponse{};
            res.status = 404;
            res.body = "not found\n";
        }
    }
    char header[256];
    std::snprintf(header, sizeof header,
                  "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                  "Connection: close\r\n\r\n",
                  res.status, reason_phrase(res.status), res.content_type, res.body.size(),
                  res.status == 405 ? "Allow: GET, HEAD\r\n" : "");
    c.out_ = header;
    if (!head) c.out_ += res.body;
    c.in_.clear();
    c.in_.shrink_to_fit();
    c.responding_ = true;
    c.deadline_ms_ = loop_.now_ms() + kResponseTimeoutMs;
    write_response(c);
}

void HttpEndpoint::write_response(Client& c) {
    while (c.sent_ < c.out_.size()) {
        struct iovec span = {c.out_.data() + c.sent_, c.out_.size() - c.sent_};
        IoResult r = io_writev(c.fd_, &span, 1);
        if (r.status == IoStatus::would_block) return;  // EPOLLOUT resumes it
        if (r.status != IoStatus::ok) {
            finish(c);
            return;
        }
        c.sent_ += r.bytes;
    }
    io_shutdown_write(c.fd_);
    finish(c);
}

void HttpEndpoint::finish(Client& c) {
    if (c.done_) return;
    c.done_ = true;
    loop_.remove(c.fd_);
    io_close(c.fd_);
    c.fd_ = -1;
    --client_count_;
    done_.push_back(c);  // off clients_, onto the list freed at the end
    loop_.at_iteration_end(*this);
}
