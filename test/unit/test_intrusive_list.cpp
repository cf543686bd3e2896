// test_intrusive_list.cpp - unit tests for src/server/intrusive_list.h.
//
// The element type mimics a connection: on an idle LRU list and a flush
// list at once, through two tagged hooks. Orders are checked by walking the
// list with front()/next() and comparing with the expected ids exactly; a
// randomized LRU run compares against a std::list model. Seeds are fixed.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <list>
#include <vector>

// CMocka last among the system headers: it defines fail() and friends as
// macros. Its 1.1 header has no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

#include "intrusive_list.h"

namespace {

struct IdleTag {};
struct FlushTag {};

struct Conn : ListHook<IdleTag>, ListHook<FlushTag> {
    int id = 0;
    explicit Conn(int i) : id(i) {}
};

using IdleList = IntrusiveList<Conn, IdleTag>;
using FlushList = IntrusiveList<Conn, FlushTag>;

// The ids along the list, front to back (bounded: a cycle fails the test).
template <class L>
std::vector<int> ids(const L& list) {
    std::vector<int> out;
    for (Conn* c = list.front(); c != nullptr; c = list.next(*c)) {
        out.push_back(c->id);
        assert_true(out.size() <= 100000);
    }
    return out;
}

bool same(const std::vector<int>& got, std::initializer_list<int> want) {
    return std::equal(got.begin(), got.end(), want.begin(), want.end());
}

void test_empty(void**) {
    IdleList l;
    assert_true(l.empty());
    assert_null(l.front());
    assert_null(l.pop_front());
    assert_true(l.empty());
    Conn a(1);
    assert_false(IdleList::linked(a));
    IdleList::unlink(a);  // harmless when not linked
    assert_false(IdleList::linked(a));
    assert_true(l.empty());
}

void test_push_back_order_and_pop(void**) {
    IdleList l;
    Conn a(1), b(2), c(3);
    l.push_back(a);
    assert_false(l.empty());
    assert_ptr_equal(l.front(), &a);
    assert_null(l.next(a));
    l.push_back(b);
    l.push_back(c);
    assert_true(same(ids(l), {1, 2, 3}));
    assert_ptr_equal(l.next(a), &b);
    assert_ptr_equal(l.next(b), &c);
    assert_null(l.next(c));
    assert_true(IdleList::linked(a) && IdleList::linked(b) && IdleList::linked(c));

    assert_ptr_equal(l.pop_front(), &a);
    assert_false(IdleList::linked(a));
    assert_true(same(ids(l), {2, 3}));
    assert_ptr_equal(l.pop_front(), &b);
    assert_ptr_equal(l.pop_front(), &c);
    assert_false(IdleList::linked(c));
    assert_true(l.empty());
    assert_null(l.pop_front());

    // Popped elements can go back on.
    l.push_back(c);
    l.push_back(a);
    assert_true(same(ids(l), {3, 1}));
}

// push_back of a linked element moves it to the back: the LRU "touch".
void test_repush_moves_to_back(void**) {
    IdleList l;
    Conn a(1), b(2), c(3), d(4);
    l.push_back(a);
    l.push_back(b);
    l.push_back(c);
    l.push_back(d);
    l.push_back(a);  // front to back
    assert_true(same(ids(l), {2, 3, 4, 1}));
    l.push_back(c);  // middle to back
    assert_true(same(ids(l), {2, 4, 1, 3}));
    l.push_back(c);  // already at the back: no change
    assert_true(same(ids(l), {2, 4, 1, 3}));
    assert_ptr_equal(l.front(), &b);
    // Touching the only element of a one-element list.
    IdleList one;
    Conn e(5);
    one.push_back(e);
    one.push_back(e);
    assert_true(same(ids(one), {5}));
    assert_ptr_equal(one.pop_front(), &e);
    assert_true(one.empty());
}

void test_unlink_middle_first_last(void**) {
    IdleList l;
    Conn a(1), b(2), c(3), d(4), e(5);
    for (Conn* x : {&a, &b, &c, &d, &e}) l.push_back(*x);
    IdleList::unlink(c);  // middle
    assert_false(IdleList::linked(c));
    assert_true(same(ids(l), {1, 2, 4, 5}));
    assert_ptr_equal(l.next(b), &d);
    IdleList::unlink(c);  // twice: harmless
    assert_true(same(ids(l), {1, 2, 4, 5}));
    IdleList::unlink(a);  // first
    assert_true(same(ids(l), {2, 4, 5}));
    assert_ptr_equal(l.front(), &b);
    IdleList::unlink(e);  // last
    assert_true(same(ids(l), {2, 4}));
    assert_null(l.next(d));
    l.push_back(c);
    assert_true(same(ids(l), {2, 4, 3}));
    IdleList::unlink(b);
    IdleList::unlink(d);
    IdleList::unlink(c);
    assert_true(l.empty());
    assert_null(l.front());
}

// Removing while iterating: take next() before unlinking.
void test_remove_while_iterating(void**) {
    IdleList l;
    std::vector<Conn> conns;
    conns.reserve(10);
    for (int i = 0; i < 10; ++i) conns.emplace_back(i);
    for (Conn& c : conns) l.push_back(c);
    for (Conn* c = l.front(); c != nullptr;) {
        Conn* nx = l.next(*c);
        if (c->id % 2 == 0) IdleList::unlink(*c);
        c = nx;
    }
    assert_true(same(ids(l), {1, 3, 5, 7, 9}));
    for (Conn& c : conns) assert_int_equal(IdleList::linked(c), c.id % 2 == 1);
}

// One element on two lists through two hooks: the lists are independent.
void test_two_lists_two_tags(void**) {
    IdleList idle;
    FlushList flush;
    Conn a(1), b(2), c(3);
    idle.push_back(a);
    idle.push_back(b);
    idle.push_back(c);
    flush.push_back(c);
    flush.push_back(a);
    assert_true(same(ids(idle), {1, 2, 3}));
    assert_true(same(ids(flush), {3, 1}));
    assert_false(FlushList::linked(b));
    assert_true(FlushList::linked(a));

    // Unlinking from one list leaves the other alone.
    IdleList::unlink(a);
    assert_false(IdleList::linked(a));
    assert_true(FlushList::linked(a));
    assert_true(same(ids(idle), {2, 3}));
    assert_true(same(ids(flush), {3, 1}));

    // Touching on one list does not reorder the other.
    idle.push_back(b);
    assert_true(same(ids(idle), {3, 2}));
    assert_true(same(ids(flush), {3, 1}));

    // pop_front of one list keeps the element on the other.
    assert_ptr_equal(flush.pop_front(), &c);
    assert_false(FlushList::linked(c));
    assert_true(IdleList::linked(c));
    assert_true(same(ids(idle), {3, 2}));
    assert_true(same(ids(flush), {1}));
    assert_ptr_equal(flush.pop_front(), &a);
    assert_true(flush.empty());
    assert_true(same(ids(idle), {3, 2}));

    // Drain the idle list as a flush would (pop until empty).
    int n = 0;
    while (Conn* x = idle.pop_front()) {
        assert_false(IdleList::linked(*x));
        ++n;
    }
    assert_int_equal(n, 2);
}

// push_back onto a second list of the same tag moves the element there:
// one hook, one list at a time.
void test_push_moves_between_lists_of_same_tag(void**) {
    IdleList l1, l2;
    Conn a(1), b(2);
    l1.push_back(a);
    l1.push_back(b);
    l2.push_back(a);
    assert_true(same(ids(l1), {2}));
    assert_true(same(ids(l2), {1}));
}

// Randomized LRU run against a std::list model: touch (push_back), unlink,
// expire (pop_front), checked in full after each step.
void test_lru_model_randomized(void**) {
    const int n = 200;
    std::vector<Conn> conns;
    conns.reserve(n);
    for (int i = 0; i < n; ++i) conns.emplace_back(i);
    IdleList l;
    std::list<int> model;
    uint64_t s = 12345;
    auto rnd = [&](uint64_t m) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;  // LCG (Knuth MMIX)
        return (s >> 33) % m;
    };
    for (int step = 0; step < 20000; ++step) {
        uint64_t op = rnd(10);
        Conn& c = conns[rnd(n)];
        if (op < 6) {
            l.push_back(c);
            model.remove(c.id);
            model.push_back(c.id);
        } else if (op < 8) {
            IdleList::unlink(c);
            model.remove(c.id);
        } else {
            Conn* f = l.pop_front();
            if (model.empty()) {
                assert_null(f);
            } else {
                assert_non_null(f);
                assert_int_equal(f->id, model.front());
                model.pop_front();
            }
        }
        std::vector<int> got = ids(l);
        assert_int_equal(got.size(), model.size());
        assert_true(std::equal(got.begin(), got.end(), model.begin()));
        assert_int_equal(l.empty(), model.empty());
        if (step % 500 == 0)
            for (Conn& x : conns)
                assert_int_equal(IdleList::linked(x),
                                 std::find(model.begin(), model.end(), x.id) != model.end());
    }
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_push_back_order_and_pop),
        cmocka_unit_test(test_repush_moves_to_back),
        cmocka_unit_test(test_unlink_middle_first_last),
        cmocka_unit_test(test_remove_while_iterating),
        cmocka_unit_test(test_two_lists_two_tags),
        cmocka_unit_test(test_push_moves_between_lists_of_same_tag),
        cmocka_unit_test(test_lru_model_randomized),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
