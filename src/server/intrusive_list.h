// intrusive_list.h - a doubly linked list threaded through its elements.
//
// An element derives from ListHook<Tag> once per list it can be on (the Tag
// names the list: idle, flush, ...). The list never allocates, unlinking is
// O(1) from the element alone, and an element knows whether it is linked.
// Used for the idle LRU (O(1) timeouts), the per-iteration flush and reap
// lists, and both sides of a subscription.
//
// Getting from a hook back to its element is a static_cast from base to
// derived: well-defined C++, no offsetof tricks. Not thread-safe.
#pragma once

#include <cstddef>

struct ListNode {
    ListNode() = default;
    // Copying an element does not copy its place in a list: the copy starts
    // unlinked, and assignment leaves the target's own links alone.
    ListNode(const ListNode&) {}
    ListNode& operator=(const ListNode&) { return *this; }
    // Destroying a linked node would leave its neighbours dangling.
    ~ListNode() { unlink(); }

    ListNode* prev = nullptr;
    ListNode* next = nullptr;
    bool linked() const { return next != nullptr; }
    // Unlinks from whatever list holds it; harmless when not linked.
    void unlink() {
        if (next == nullptr) return;
        prev->next = next;
        next->prev = prev;
        prev = next = nullptr;
    }
};

template <class Tag>
struct ListHook : ListNode {};

template <class T, class Tag>
class IntrusiveList {
    using Hook = ListHook<Tag>;

   public:
    IntrusiveList() { head_.prev = head_.next = &head_; }
    IntrusiveList(const IntrusiveList&) = delete;
    IntrusiveList& operator=(const IntrusiveList&) = delete;

    bool empty() const { return head_.next == &head_; }

    static bool linked(const T& item) { return static_cast<const Hook&>(item).linked(); }
    static void unlink(T& item) { static_cast<Hook&>(item).unlink(); }

    // Appends item, first unlinking it from wherever it was (so this is
    // also the LRU "touch").
    void push_back(T& item) {
        ListNode& n = static_cast<Hook&>(item);
        n.unlink();
        n.prev = head_.prev;
        n.next = &head_;
        head_.prev->next = &n;
        head_.prev = &n;
    }

    T* front() const { return empty() ? nullptr : owner(head_.next); }

    T* pop_front() {
        T* item = front();
        if (item != nullptr) unlink(*item);
        return item;
    }

    // The element after item, or nullptr at the end. Capture it before
    // unlinking item when removing while iterating.
    T* next(const T& item) const {
        const ListNode* n = static_cast<const Hook&>(item).next;
        return n == &head_ ? nullptr : owner(n);
    }

   private:
    static T* owner(const ListNode* node) {
        return static_cast<T*>(static_cast<Hook*>(const_cast<ListNode*>(node)));
    }

    ListNode head_;
};
