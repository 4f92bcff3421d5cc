//! A persistent Merkle-Patricia trie over 32-byte (hashed) keys that keeps its nodes and their
//! hashes: the account trie and every storage trie.
//!
//! The nodes are shared between versions behind [`Arc`]s, so cloning a trie is O(1). A change
//! copies only the nodes on the path to its key ([`Arc::make_mut`]), and forgets their cached
//! references. [`HashedTrie::root`] then hashes only the nodes whose reference is unknown: the
//! cost of a root is proportional to what changed since the last one, not to the size of the
//! trie.
//!
//! Shape, kept by every change:
//! - a subtrie holding one key is a [`Leaf`], whatever its depth;
//! - a subtrie holding two keys or more is a [`Branch`] at each depth down to where the keys
//!   part. A branch with one child (always another branch) is the start of what the
//!   Merkle-Patricia trie writes as an extension node.
//!
//! A leaf's encoding depends on its depth (its path is the rest of its key), so a leaf that
//! moves to another depth is always a new node. A branch never moves: its children are indexed
//! by the nibble at its depth.

use std::sync::Arc;

use alloy_primitives::B256;
use alloy_rlp::Encodable as _;
use alloy_trie::{
    nodes::{BranchNodeRef, ExtensionNodeRef, RlpNode},
    Nibbles, TrieMask, EMPTY_ROOT_HASH,
};

use crate::trie::{root_hash, Leaves};

/// A persistent Merkle-Patricia trie from 32-byte keys to `V`.
#[derive(Clone, Debug)]
pub(crate) struct HashedTrie<V> {
    root: Option<Arc<Node<V>>>,
    len: usize,
}

impl<V> Default for HashedTrie<V> {
    fn default() -> Self {
        Self { root: None, len: 0 }
    }
}

#[derive(Clone, Debug)]
enum Node<V> {
    Leaf(Leaf<V>),
    Branch(Branch<V>),
}

#[derive(Clone, Debug)]
struct Leaf<V> {
    key: B256,
    value: V,
    /// The reference to this leaf at its depth: its hash, or the leaf itself under 32 bytes.
    reference: Option<RlpNode>,
}

#[derive(Clone, Debug)]
struct Branch<V> {
    children: [Option<Arc<Node<V>>>; 16],
    /// The reference to the node this branch stands for: a branch node, or for a branch with
    /// one child an extension node down to where the keys part.
    reference: Option<RlpNode>,
}

impl<V> Node<V> {
    fn reference(&self) -> Option<&RlpNode> {
        match self {
            Self::Leaf(leaf) => leaf.reference.as_ref(),
            Self::Branch(branch) => branch.reference.as_ref(),
        }
    }
}

impl<V> Leaf<V> {
    fn new(key: B256, value: V) -> Self {
        Self {
            key,
            value,
            reference: None,
        }
    }

    /// A copy of this leaf for another depth, without its reference (which depends on it).
    fn moved(&self) -> Self
    where
        V: Clone,
    {
        Self::new(self.key, self.value.clone())
    }
}

impl<V> Branch<V> {
    fn empty() -> Self {
        Self {
            children: Default::default(),
            reference: None,
        }
    }

    fn child_count(&self) -> usize {
        self.children.iter().filter(|c| c.is_some()).count()
    }

    /// When this branch is left with a single child and it is a leaf: that leaf as a new
    /// node, to take the branch's place (a subtrie of one key is a leaf at its top).
    fn lone_leaf(&self) -> Option<Arc<Node<V>>>
    where
        V: Clone,
    {
        let mut children = self.children.iter().flatten();
        match (children.next(), children.next()) {
            (Some(only), None) => match &**only {
                Node::Leaf(leaf) => Some(Arc::new(Node::Leaf(leaf.moved()))),
                Node::Branch(_) => None,
            },
            _ => None,
        }
    }
}

/// The nibble of `key` at `depth` (0 is the high half of the first byte).
pub(crate) fn nibble(key: &B256, depth: usize) -> usize {
    let byte = key[depth / 2];
    usize::from(if depth.is_multiple_of(2) {
        byte >> 4
    } else {
        byte & 0x0f
    })
}

impl<V: Clone> HashedTrie<V> {
    /// The number of keys.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the trie holds no key.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value at `key`.
    pub(crate) fn get(&self, key: &B256) -> Option<&V> {
        get_at(self.root.as_ref(), 0, key)
    }

    /// The value at each of `keys`, in order.
    ///
    /// The lookups walk down side by side, a level at a time, so that the memory reads of
    /// several keys are under way at once instead of one after another: for keys spread over
    /// a large trie, each level is a cache miss.
    pub(crate) fn get_many(&self, keys: &[B256]) -> Vec<Option<&V>> {
        const SIDE_BY_SIDE: usize = 16;
        let mut values = Vec::with_capacity(keys.len());
        for group in keys.chunks(SIDE_BY_SIDE) {
            let mut nodes = [self.root.as_deref(); SIDE_BY_SIDE];
            let mut depth = 0;
            let mut descending = true;
            while descending {
                descending = false;
                for (node, key) in nodes.iter_mut().zip(group) {
                    if let Some(Node::Branch(branch)) = node {
                        *node = branch.children[nibble(key, depth)].as_deref();
                        descending = true;
                    }
                }
                depth += 1;
            }
            values.extend(nodes.iter().zip(group).map(|(node, key)| match node {
                Some(Node::Leaf(leaf)) if leaf.key == *key => Some(&leaf.value),
                _ => None,
            }));
        }
        values
    }

    /// Sets the value at `key`, returning the value it replaces.
    pub(crate) fn insert(&mut self, key: B256, value: V) -> Option<V> {
        self.set(key, Some(&value))
    }

    /// Removes the value at `key`, returning it.
    #[cfg(test)]
    pub(crate) fn remove(&mut self, key: &B256) -> Option<V> {
        self.set(*key, None)
    }

    /// Sets the value at `key` (`None`: removes it), returning the one it replaces; one
    /// change through [`merge`].
    fn set(&mut self, key: B256, value: Option<&V>) -> Option<V> {
        let old = self.get(&key).cloned();
        if old.is_none() && value.is_none() {
            // Removing an absent key copies no node.
            return None;
        }
        let added = merge(&mut self.root, 0, &[(key, &value)], &|value| value.cloned());
        self.len = with_added(self.len, added);
        old
    }

    /// Every `(key, value)`, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&B256, &V)> {
        let mut stack: Vec<&Node<V>> = self.root.as_deref().into_iter().collect();
        std::iter::from_fn(move || loop {
            match stack.pop()? {
                Node::Leaf(leaf) => return Some((&leaf.key, &leaf.value)),
                Node::Branch(branch) => {
                    stack.extend(branch.children.iter().rev().flatten().map(Arc::as_ref));
                }
            }
        })
    }
}

impl<V: Clone + Send + Sync> HashedTrie<V> {
    /// For each of `items`, sets the value at `key(item)` to `value(item)`, or removes it for
    /// `None`; the keys must be distinct. The values are computed in the order of `items` (which
    /// may follow where they live in memory), then merged into the trie in key order in one
    /// pass ([`merge`]): each changed node is copied once, and each new leaf is built in place.
    /// With `parallel`, the two halves of the key space (by first nibble) are updated on two
    /// threads ([`Subtries::update`]), each computing the values of its own items and then
    /// hashing the subtries it changed (with `encode`, as [`HashedTrie::root`] would), so that
    /// the next root only has the root node left to hash. The result does not depend on
    /// `parallel`, nor on the order of `items`.
    pub(crate) fn update<T: Sync>(
        &mut self,
        items: &[T],
        key: impl Fn(&T) -> B256 + Sync,
        value: impl Fn(&T) -> Option<V> + Sync,
        encode: &(impl Fn(&V, &mut Vec<u8>) + Sync),
        parallel: bool,
    ) {
        if parallel {
            if let Some(mut low) = self.take_subtries(0..8) {
                let mut high = self.take_subtries(8..16).expect("the root is a branch");
                std::thread::scope(|scope| {
                    let other = scope.spawn(|| low.update(items, &key, &value, encode));
                    high.update(items, &key, &value, encode);
                    if let Err(panic) = other.join() {
                        std::panic::resume_unwind(panic);
                    }
                });
                self.put_subtries([low, high]);
                return;
            }
        }
        let (values, order) = values_of(items, &key, &value, 0..16);
        let added = merge_values(&mut self.root, 0, &values, &order);
        self.len = with_added(self.len, added);
    }

    /// Takes the subtries under the root branch whose first nibble is in `nibbles` out of the
    /// trie, for [`Subtries::update`] on whichever thread; `None` when the root is not a
    /// branch. The trie lacks them until they are put back ([`HashedTrie::put_subtries`]).
    pub(crate) fn take_subtries(&mut self, nibbles: std::ops::Range<usize>) -> Option<Subtries<V>> {
        let root = self.root.as_mut()?;
        if !matches!(**root, Node::Branch(_)) {
            return None;
        }
        let Node::Branch(branch) = Arc::make_mut(root) else {
            unreachable!("matched a branch")
        };
        branch.reference = None;
        Some(Subtries {
            first: nibbles.start,
            children: branch.children[nibbles]
                .iter_mut()
                .map(Option::take)
                .collect(),
            added: 0,
        })
    }

    /// Puts back every subtrie taken out ([`HashedTrie::take_subtries`]), with the keys their
    /// updates added. As after a removal, a root left with one leaf becomes that leaf, at
    /// depth 0, and one left with nothing is gone.
    pub(crate) fn put_subtries(&mut self, taken: impl IntoIterator<Item = Subtries<V>>) {
        let root = self
            .root
            .as_mut()
            .expect("subtries are taken from a root branch");
        let Node::Branch(branch) = Arc::make_mut(root) else {
            unreachable!("subtries are taken from a root branch")
        };
        for subtries in taken {
            for (at, child) in subtries.children.into_iter().enumerate() {
                branch.children[subtries.first + at] = child;
            }
            self.len = with_added(self.len, subtries.added);
        }
        if branch.child_count() == 0 {
            self.root = None;
        } else if let Some(leaf) = branch.lone_leaf() {
            self.root = Some(leaf);
        }
    }

    /// The root hash, with each leaf's value written by `encode`. Only the nodes changed since
    /// the last call are hashed: first every changed leaf, in one batch
    /// ([`tandem_keccak::keccak256_many`]), then the branches above them. With `parallel`, the
    /// subtries under the root are split over two threads; the result does not depend on it.
    ///
    /// `encode` must be the same function at every call on a trie and its clones, since the
    /// references of unchanged leaves are kept.
    pub(crate) fn root(
        &mut self,
        parallel: bool,
        encode: &(impl Fn(&V, &mut Vec<u8>) + Sync),
    ) -> B256 {
        let Some(root) = &mut self.root else {
            return EMPTY_ROOT_HASH;
        };
        let reference = match Arc::make_mut(root) {
            Node::Branch(branch) if parallel && branch.reference.is_none() => {
                refresh_split(branch, encode)
            }
            _ => refresh(root, 0, encode),
        };
        root_hash(&reference)
    }
}

/// Some of the subtries under a trie's root branch, taken out of it
/// ([`HashedTrie::take_subtries`]) so that a thread can update them ([`Subtries::update`])
/// while another updates the rest, then put back ([`HashedTrie::put_subtries`]).
#[derive(Debug)]
pub(crate) struct Subtries<V> {
    /// The first nibble of the keys under `children[0]`.
    first: usize,
    children: Vec<Option<Arc<Node<V>>>>,
    /// How many keys the updates added (negative: removed).
    added: isize,
}

impl<V: Clone> Subtries<V> {
    /// The first nibble of the keys under them.
    pub(crate) fn first(&self) -> usize {
        self.first
    }

    /// [`HashedTrie::update`] for the items whose keys fall under these subtries (the others
    /// are left out), which are then hashed, so that the trie's next root only has the root
    /// node left to hash.
    pub(crate) fn update<T>(
        &mut self,
        items: &[T],
        key: &impl Fn(&T) -> B256,
        value: &impl Fn(&T) -> Option<V>,
        encode: &impl Fn(&V, &mut Vec<u8>),
    ) {
        let (values, order) = values_of(
            items,
            key,
            value,
            self.first..self.first + self.children.len(),
        );
        self.added += groups(&order, 0)
            .map(|(nibble, group)| {
                merge_values(&mut self.children[nibble - self.first], 1, &values, group)
            })
            .sum::<isize>();
        for child in self.children.iter_mut().flatten() {
            refresh(child, 1, encode);
        }
    }
}

/// Values to merge, in the order they were computed, and their keys in key order, each with
/// the position of its value ([`values_of`], [`merge_values`]).
type Ordered<V> = (Vec<std::cell::Cell<Option<V>>>, Vec<(B256, usize)>);

/// The values of the items whose first nibble is in `nibbles`, in the order of `items` (which
/// may follow where they live in memory), and their keys in key order, each with the position
/// of its value.
fn values_of<T, V>(
    items: &[T],
    key: &impl Fn(&T) -> B256,
    value: &impl Fn(&T) -> Option<V>,
    nibbles: std::ops::Range<usize>,
) -> Ordered<V> {
    // Room for the share of uniformly spread keys.
    let expected = items.len() * nibbles.len() / 16 + 16;
    let mut values = Vec::with_capacity(expected);
    let mut order = Vec::with_capacity(expected);
    for item in items {
        let key = key(item);
        if nibbles.contains(&nibble(&key, 0)) {
            order.push((key, values.len()));
            values.push(std::cell::Cell::new(value(item)));
        }
    }
    order.sort_unstable_by_key(|(key, _)| *key);
    (values, order)
}

/// [`merge`]s the items of `order` (keys in key order, with the positions of their `values`)
/// into the subtrie in `slot` at `depth`; each value is taken by the one merge that builds its
/// leaf.
fn merge_values<V: Clone>(
    slot: &mut Option<Arc<Node<V>>>,
    depth: usize,
    values: &[std::cell::Cell<Option<V>>],
    order: &[(B256, usize)],
) -> isize {
    let keyed: Vec<(B256, &std::cell::Cell<Option<V>>)> = order
        .iter()
        .map(|(key, position)| (*key, &values[*position]))
        .collect();
    merge(slot, depth, &keyed, &std::cell::Cell::take)
}

/// The value at `key` in the subtrie `node` at `depth`.
fn get_at<'a, V>(node: Option<&'a Arc<Node<V>>>, depth: usize, key: &B256) -> Option<&'a V> {
    let mut node = node?.as_ref();
    let mut depth = depth;
    loop {
        match node {
            Node::Leaf(leaf) => return (leaf.key == *key).then_some(&leaf.value),
            Node::Branch(branch) => {
                node = branch.children[nibble(key, depth)].as_deref()?;
                depth += 1;
            }
        }
    }
}

/// The runs of `items` (sorted by key, sharing their first `depth` nibbles) that share the
/// nibble at `depth`, with that nibble.
fn groups<T>(items: &[(B256, T)], depth: usize) -> impl Iterator<Item = (usize, &[(B256, T)])> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let (first, _) = rest.first()?;
        let at = nibble(first, depth);
        let end = rest.partition_point(|(key, _)| nibble(key, depth) <= at);
        let (group, tail) = rest.split_at(end);
        rest = tail;
        Some((at, group))
    })
}

/// Applies `items` (sorted by key, distinct, all under the prefix of `slot`) to the subtrie
/// in `slot` at `depth`: each item's key gets `value(item)`, or is removed for `None`.
/// Returns how many keys that adds (negative: removes).
///
/// A branch is copied once ([`Arc::make_mut`]) and its items handed down by nibble; where
/// there was nothing, or a single leaf, the new subtrie is built whole ([`build`]). The shape
/// is restored on the way up: a branch left with a single leaf becomes that leaf.
fn merge<V: Clone, T>(
    slot: &mut Option<Arc<Node<V>>>,
    depth: usize,
    items: &[(B256, &T)],
    value: &impl Fn(&T) -> Option<V>,
) -> isize {
    if items.is_empty() {
        return 0;
    }
    let new_leaves = || -> Vec<Option<Leaf<V>>> {
        items
            .iter()
            .filter_map(|(key, item)| value(item).map(|value| Some(Leaf::new(*key, value))))
            .collect()
    };
    if let [(key, item)] = items {
        // One change: the common case, without building a list.
        match slot.as_deref() {
            None => {
                let Some(value) = value(item) else {
                    return 0;
                };
                *slot = Some(Arc::new(Node::Leaf(Leaf::new(*key, value))));
                return 1;
            }
            Some(Node::Leaf(leaf)) if leaf.key == *key => {
                *slot = value(item).map(|value| Arc::new(Node::Leaf(Leaf::new(*key, value))));
                return if slot.is_some() { 0 } else { -1 };
            }
            _ => {}
        }
    }
    let Some(node) = slot else {
        let mut leaves = new_leaves();
        let added = count(leaves.len());
        *slot = build(depth, &mut leaves);
        return added;
    };
    match &**node {
        Node::Leaf(leaf) => {
            let existing = leaf.key;
            let replaced = items
                .binary_search_by(|(key, _)| key.cmp(&existing))
                .is_ok();
            let mut leaves = new_leaves();
            if leaves.is_empty() && !replaced {
                // Only removals of absent keys: nothing changes.
                return 0;
            }
            let added = count(leaves.len()) - isize::from(replaced);
            if !replaced {
                // The leaf stays, at the depth its new neighbours give it.
                let at = leaves.partition_point(|l| l.as_ref().is_some_and(|l| l.key < existing));
                leaves.insert(at, Some(leaf.moved()));
            }
            *slot = build(depth, &mut leaves);
            added
        }
        Node::Branch(_) => {
            let Node::Branch(branch) = Arc::make_mut(node) else {
                unreachable!("matched a branch")
            };
            branch.reference = None;
            let added = groups(items, depth)
                .map(|(at, group)| merge(&mut branch.children[at], depth + 1, group, value))
                .sum();
            if branch.child_count() == 0 {
                *slot = None;
            } else if let Some(leaf) = branch.lone_leaf() {
                *slot = Some(leaf);
            }
            added
        }
    }
}

/// `len` keys after `added` more (negative: removed).
fn with_added(len: usize, added: isize) -> usize {
    len.checked_add_signed(added)
        .expect("no more keys removed than there were")
}

/// A number of keys as a signed change.
fn count(keys: usize) -> isize {
    isize::try_from(keys).expect("a trie holds fewer than isize::MAX keys")
}

/// The subtrie at `depth` holding `leaves` (sorted by key, distinct, sharing their first
/// `depth` nibbles; each taken once): a leaf for one, otherwise a branch at each depth down
/// to where their keys part.
fn build<V>(depth: usize, leaves: &mut [Option<Leaf<V>>]) -> Option<Arc<Node<V>>> {
    let key = |leaf: &Option<Leaf<V>>| leaf.as_ref().expect("each leaf is taken once").key;
    match leaves {
        [] => None,
        [only] => only.take().map(|leaf| Arc::new(Node::Leaf(leaf))),
        _ => {
            let mut branch = Branch::empty();
            let mut rest = leaves;
            while let Some(first) = rest.first() {
                let at = nibble(&key(first), depth);
                let end = rest.partition_point(|leaf| nibble(&key(leaf), depth) <= at);
                let (group, tail) = std::mem::take(&mut rest).split_at_mut(end);
                branch.children[at] = build(depth + 1, group);
                rest = tail;
            }
            Some(Arc::new(Node::Branch(branch)))
        }
    }
}

/// A dirty leaf found by [`collect_leaves`], with its depth.
type DirtyLeaf<'a, V> = (&'a mut Leaf<V>, usize);

/// Pushes every leaf without a reference under `node` (at `depth`) onto `out`.
fn collect_leaves<'a, V: Clone>(
    node: &'a mut Arc<Node<V>>,
    depth: usize,
    out: &mut Vec<DirtyLeaf<'a, V>>,
) {
    if node.reference().is_some() {
        return;
    }
    match Arc::make_mut(node) {
        Node::Leaf(leaf) => out.push((leaf, depth)),
        Node::Branch(branch) => {
            for child in branch.children.iter_mut().flatten() {
                collect_leaves(child, depth + 1, out);
            }
        }
    }
}

/// Sets the reference of every leaf in `leaves`, hashing all of them in one batch.
fn hash_leaves<V>(leaves: &mut [DirtyLeaf<'_, V>], encode: &impl Fn(&V, &mut Vec<u8>)) {
    let mut batch = Leaves::with_capacity(leaves.len());
    let mut value = Vec::with_capacity(128);
    for (position, (leaf, depth)) in leaves.iter().enumerate() {
        value.clear();
        encode(&leaf.value, &mut value);
        batch.push(position, &Nibbles::unpack(leaf.key).slice(*depth..), &value);
    }
    let mut references = vec![None; leaves.len()];
    batch.hash_into(&mut references);
    for ((leaf, _), reference) in leaves.iter_mut().zip(references) {
        leaf.reference = reference;
    }
}

/// Fills the references under `node` (at `depth`) and returns its own.
///
/// The changed leaves are hashed first, in one batch. The branches above them are then
/// hashed in rounds, each in one batch: a branch is ready once all its children have their
/// references (a branch that stands for an extension: once the branch where its keys part
/// has), so each round takes the lowest changed branches left on each path.
fn refresh<V: Clone>(
    node: &mut Arc<Node<V>>,
    depth: usize,
    encode: &impl Fn(&V, &mut Vec<u8>),
) -> RlpNode {
    if let Some(reference) = node.reference() {
        return reference.clone();
    }
    let mut leaves = Vec::new();
    collect_leaves(node, depth, &mut leaves);
    hash_leaves(&mut leaves, encode);
    drop(leaves);
    let mut batch = Leaves::with_capacity(0);
    let mut scratch = Scratch::default();
    loop {
        if let Some(reference) = node.reference() {
            return reference.clone();
        }
        let mut ready = Vec::new();
        collect_ready(node, &mut ready);
        for (position, branch) in ready.iter().enumerate() {
            batch.push_node(position, |buf| encode_branch(branch, &mut scratch, buf));
        }
        let mut references = vec![None; ready.len()];
        batch.hash_into(&mut references);
        for (branch, reference) in ready.into_iter().zip(references) {
            branch.reference = reference;
        }
    }
}

/// [`refresh`] for a root branch, with its children split over two threads.
fn refresh_split<V: Clone + Send + Sync>(
    branch: &mut Branch<V>,
    encode: &(impl Fn(&V, &mut Vec<u8>) + Sync),
) -> RlpNode {
    let mut dirty: Vec<&mut Arc<Node<V>>> = branch
        .children
        .iter_mut()
        .flatten()
        .filter(|c| c.reference().is_none())
        .collect();
    let half = dirty.len() / 2;
    let (first, second) = dirty.split_at_mut(half);
    let refresh_all = |children: &mut [&mut Arc<Node<V>>]| {
        for child in children {
            refresh(child, 1, encode);
        }
    };
    if first.is_empty() {
        // At most one subtrie changed (none after an update that hashed its subtries): no
        // thread to share it with.
        refresh_all(second);
    } else {
        std::thread::scope(|scope| {
            let other = scope.spawn(|| refresh_all(first));
            refresh_all(second);
            other.join().expect("hashing a subtrie does not panic");
        });
    }
    let mut buf = Vec::with_capacity(600);
    encode_branch(branch, &mut Scratch::default(), &mut buf);
    let reference = RlpNode::from_rlp(&buf);
    branch.reference = Some(reference.clone());
    reference
}

/// Pushes onto `out` every branch under `node` (itself included) that has no reference yet
/// while its children have theirs, as [`refresh`] describes. Leaves must have theirs.
fn collect_ready<'a, V: Clone>(node: &'a mut Arc<Node<V>>, out: &mut Vec<&'a mut Branch<V>>) {
    if node.reference().is_some() {
        return;
    }
    let Node::Branch(branch) = Arc::make_mut(node) else {
        unreachable!("leaves are hashed before branches")
    };
    if branch.child_count() >= 2 {
        if branch
            .children
            .iter()
            .flatten()
            .all(|child| child.reference().is_some())
        {
            out.push(branch);
        } else {
            for child in branch.children.iter_mut().flatten() {
                collect_ready(child, out);
            }
        }
    } else if parting(branch, &mut |_| {}).reference().is_some() {
        out.push(branch);
    } else {
        collect_ready(parting_mut(branch), out);
    }
}

/// Below a single-child `branch`: the branch where the keys part (two children or more),
/// with `step` given each nibble on the way down.
fn parting<'b, V>(branch: &'b Branch<V>, step: &mut impl FnMut(u8)) -> &'b Node<V> {
    let (nibble, child) = only_child(branch);
    step(nibble);
    match &**child {
        Node::Branch(below) if below.child_count() < 2 => parting(below, step),
        node @ Node::Branch(_) => node,
        Node::Leaf(_) => unreachable!("a single key below a branch is a leaf in its place"),
    }
}

/// [`parting`], to be changed.
fn parting_mut<V: Clone>(branch: &mut Branch<V>) -> &mut Arc<Node<V>> {
    let child = branch
        .children
        .iter_mut()
        .flatten()
        .next()
        .expect("a branch has a child");
    if matches!(&**child, Node::Branch(below) if below.child_count() < 2) {
        let Node::Branch(below) = Arc::make_mut(child) else {
            unreachable!("matched a branch")
        };
        parting_mut(below)
    } else {
        child
    }
}

/// The child of a single-child branch, with its nibble.
fn only_child<V>(branch: &Branch<V>) -> (u8, &Arc<Node<V>>) {
    branch
        .children
        .iter()
        .zip(0..)
        .find_map(|(child, nibble)| child.as_ref().map(|child| (nibble, child)))
        .expect("a branch has a child")
}

/// Buffers reused from one branch encoding to the next.
#[derive(Default)]
struct Scratch {
    children: Vec<RlpNode>,
    path: Vec<u8>,
}

/// Writes the node `branch` stands for, once its children (or the branch where its keys
/// part) have their references: a branch node over its children, or for a single-child
/// branch an extension over the nibbles down to the branch where the keys part.
fn encode_branch<V>(branch: &Branch<V>, scratch: &mut Scratch, buf: &mut Vec<u8>) {
    let reference = |node: &Node<V>| {
        node.reference()
            .cloned()
            .expect("children are hashed before their branch")
    };
    if branch.child_count() >= 2 {
        scratch.children.clear();
        let mut mask = TrieMask::default();
        for (index, child) in branch.children.iter().enumerate() {
            if let Some(child) = child {
                mask.set_bit(u8::try_from(index).expect("a nibble"));
                scratch.children.push(reference(child));
            }
        }
        BranchNodeRef::new(&scratch.children, mask).encode(buf);
        return;
    }
    scratch.path.clear();
    let parting = parting(branch, &mut |nibble| scratch.path.push(nibble));
    let path = Nibbles::from_nibbles(&scratch.path);
    ExtensionNodeRef::new(&path, &reference(parting)).encode(buf);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use alloy_primitives::{keccak256, U256};
    use alloy_trie::HashBuilder;
    use proptest::prelude::*;

    use super::*;

    #[expect(clippy::ptr_arg, reason = "the test tries hold `Vec<u8>` values")]
    fn encode(value: &Vec<u8>, buf: &mut Vec<u8>) {
        buf.extend_from_slice(value);
    }

    fn reference(model: &BTreeMap<B256, Vec<u8>>) -> B256 {
        let mut builder = HashBuilder::default();
        for (key, value) in model {
            builder.add_leaf(Nibbles::unpack(key), value);
        }
        builder.root()
    }

    fn check(trie: &mut HashedTrie<Vec<u8>>, model: &BTreeMap<B256, Vec<u8>>, parallel: bool) {
        assert_eq!(trie.len(), model.len());
        assert!(trie.iter().map(|(k, v)| (*k, v.clone())).eq(model.clone()));
        // Every key, in an order that is not the trie's, and keys it does not hold.
        let keys: Vec<B256> = model
            .keys()
            .rev()
            .copied()
            .chain((0..20u8).map(|i| keccak256([i, 0xaa])))
            .chain(
                model
                    .keys()
                    .map(|key| B256::from(U256::from_be_bytes(key.0) ^ U256::ONE)),
            )
            .collect();
        let one_by_one: Vec<Option<&Vec<u8>>> = keys.iter().map(|key| trie.get(key)).collect();
        assert_eq!(trie.get_many(&keys), one_by_one);
        assert_eq!(trie.root(parallel, &encode), reference(model));
    }

    /// A key from a few bits, so that keys share long prefixes (deep branches, extensions).
    fn clustered_key(seed: u16) -> B256 {
        let mut key = B256::repeat_byte(0xab);
        let [high, low] = seed.to_be_bytes();
        key[0] = high & 0x13;
        key[20] = low;
        key[31] = high ^ (low >> 4);
        key
    }

    #[test]
    fn empty_single_and_removed_to_empty() {
        let mut trie = HashedTrie::default();
        let mut model = BTreeMap::new();
        check(&mut trie, &model, false);
        trie.insert(B256::repeat_byte(1), vec![1; 40]);
        model.insert(B256::repeat_byte(1), vec![1; 40]);
        check(&mut trie, &model, false);
        assert_eq!(trie.remove(&B256::repeat_byte(1)), Some(vec![1; 40]));
        assert_eq!(trie.remove(&B256::repeat_byte(1)), None);
        model.clear();
        check(&mut trie, &model, true);
    }

    #[test]
    fn clones_keep_their_roots() {
        let mut trie = HashedTrie::default();
        let mut model = BTreeMap::new();
        for seed in 0..200u16 {
            let key = keccak256(seed.to_be_bytes());
            trie.insert(key, vec![seed.to_be_bytes()[1]; 40]);
            model.insert(key, vec![seed.to_be_bytes()[1]; 40]);
        }
        check(&mut trie, &model, true);
        let (mut before, model_before) = (trie.clone(), model.clone());
        for seed in (0..200u16).step_by(3) {
            let key = keccak256(seed.to_be_bytes());
            trie.remove(&key);
            model.remove(&key);
            let key = keccak256((seed + 1000).to_be_bytes());
            trie.insert(key, vec![7; 50]);
            model.insert(key, vec![7; 50]);
        }
        check(&mut trie, &model, false);
        check(&mut before, &model_before, false);
    }

    #[test]
    fn parallel_update_down_to_one_key_and_to_none() {
        let keys: Vec<B256> = (0..3u8).map(|i| keccak256([i])).collect();
        let mut trie = HashedTrie::default();
        trie.update(&keys, |k| *k, |k| Some(k.to_vec()), &encode, false);
        let mut model: BTreeMap<B256, Vec<u8>> = keys.iter().map(|k| (*k, k.to_vec())).collect();
        check(&mut trie, &model, true);
        trie.update(&keys[1..], |k| *k, |_| None, &encode, true);
        model.retain(|k, _| *k == keys[0]);
        check(&mut trie, &model, false);
        trie.insert(keys[1], vec![1; 40]);
        model.insert(keys[1], vec![1; 40]);
        check(&mut trie, &model, false);
        trie.update(&keys, |k| *k, |_| None, &encode, true);
        check(&mut trie, &BTreeMap::new(), true);
    }

    proptest! {
        /// Inserts and removals, with roots taken along the way (so that cached references
        /// are reused), against a sorted map and alloy's `HashBuilder`.
        #[test]
        fn matches_alloy_through_changes(
            ops in prop::collection::vec((any::<bool>(), any::<u16>(), 1usize..70), 1..300),
            clustered in any::<bool>(),
            every in 1usize..40,
        ) {
            let mut trie = HashedTrie::default();
            let mut model = BTreeMap::new();
            for (step, (insert, seed, len)) in ops.into_iter().enumerate() {
                let key = if clustered { clustered_key(seed) } else { keccak256(seed.to_be_bytes()) };
                if insert {
                    let value = vec![seed.to_be_bytes()[1]; len];
                    prop_assert_eq!(trie.insert(key, value.clone()), model.insert(key, value));
                } else {
                    prop_assert_eq!(trie.remove(&key), model.remove(&key));
                }
                prop_assert_eq!(trie.get(&key), model.get(&key));
                if step % every == 0 {
                    check(&mut trie, &model, step % 2 == 0);
                }
            }
            check(&mut trie, &model, true);
        }

        /// Batches of changes through `update`, split over two threads or not, against a
        /// sorted map and alloy's `HashBuilder`; the trie from before each batch keeps its root.
        #[test]
        fn batched_updates_match_alloy(
            batches in prop::collection::vec(
                prop::collection::btree_map(any::<u16>(), prop::option::of(1usize..70), 0..200),
                1..6,
            ),
            clustered in any::<bool>(),
        ) {
            let mut trie = HashedTrie::default();
            let mut model = BTreeMap::new();
            for (round, batch) in batches.into_iter().enumerate() {
                let key = |seed: u16| if clustered { clustered_key(seed) } else { keccak256(seed.to_be_bytes()) };
                let items: Vec<(u16, Option<usize>)> = batch.into_iter().collect();
                let mut before = trie.clone();
                let model_before = model.clone();
                trie.update(
                    &items,
                    |(seed, _)| key(*seed),
                    |(seed, len)| len.map(|len| vec![seed.to_be_bytes()[1]; len]),
                    &encode,
                    round % 2 == 0,
                );
                for (seed, len) in &items {
                    match len {
                        Some(len) => model.insert(key(*seed), vec![seed.to_be_bytes()[1]; *len]),
                        None => model.remove(&key(*seed)),
                    };
                }
                check(&mut trie, &model, round % 3 == 0);
                check(&mut before, &model_before, false);
            }
        }
    }
}
