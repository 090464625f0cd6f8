//! Walking a directory for backup (producer side) and assembling tree blobs
//! from the walk (consumer side).

use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::format::snapshot::Stats;
use crate::format::tree::{Node, NodeKind, RawName, Tree};
use crate::format::{BlobId, ObjectType};
use crate::index::Index;
use crate::pipeline::Progress;
use crate::pipeline::backup::{ContentBuilder, encode_tree};
use crate::pipeline::buffers::BufferPool;
use crate::pipeline::engine::Emitter;
use crate::repo::Repo;

/// What the walker tells the tree builder, in walk order.
pub enum TreeEvent {
    EnterDir(Node),
    LeaveDir,
    /// A regular file whose chunks follow, then `FileEnd`.
    FileStart(Node),
    FileEnd,
    /// A node complete in itself: symlink, fifo, or a file reused from the parent.
    Leaf(Node),
    Warning(String),
}

fn time_ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// The node for `md`, without content or subtree.
pub fn node_from_metadata(name: &[u8], md: &Metadata, kind: NodeKind) -> Node {
    Node {
        name: RawName(name.to_vec()),
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime_ns: time_ns(md.mtime(), md.mtime_nsec()),
        ctime_ns: time_ns(md.ctime(), md.ctime_nsec()),
        inode: md.ino(),
        size: if kind == NodeKind::File { md.size() } else { 0 },
        chunks: Vec::new(),
        lists: Vec::new(),
        subtree: None,
        target: None,
    }
}

pub struct Walker<'r> {
    repo: &'r Repo,
    index: Index,
    chunker: Chunker,
    progress: &'r dyn Progress,
    buffers: &'r BufferPool,
}

type Em<'a, 'b> = Emitter<'a, Vec<u8>, TreeEvent>;

impl<'r> Walker<'r> {
    pub fn new(
        repo: &'r Repo,
        chunker: Chunker,
        progress: &'r dyn Progress,
        buffers: &'r BufferPool,
    ) -> Result<Self> {
        Ok(Walker {
            buffers,
            repo,
            index: repo.index_reader()?,
            chunker,
            progress,
        })
    }

    fn load_tree(&self, id: &BlobId, em: &mut Em<'_, '_>) -> Result<Option<Tree>> {
        match self
            .repo
            .read_blob(&self.index, ObjectType::Tree, id)
            .and_then(|b| Tree::decode(&b))
        {
            Ok(t) => Ok(Some(t)),
            Err(e) => {
                em.event(TreeEvent::Warning(format!(
                    "parent tree unreadable, files will be read again: {e}"
                )))?;
                Ok(None)
            }
        }
    }

    /// Walk `root` (a directory, or a single file wrapped in a directory).
    pub fn walk_root(
        &mut self,
        root: &Path,
        parent_tree: Option<BlobId>,
        em: &mut Em<'_, '_>,
    ) -> Result<()> {
        let md = fs::metadata(root).map_err(|e| Error::io("reading", root, e))?;
        let name = root
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_else(|| b"/".to_vec());
        if md.is_dir() {
            let parent = match parent_tree {
                Some(id) => self.load_tree(&id, em)?,
                None => None,
            };
            self.walk_dir(
                root,
                node_from_metadata(&name, &md, NodeKind::Dir),
                parent,
                em,
            )
        } else {
            em.event(TreeEvent::EnterDir(node_from_metadata(
                b"/",
                &md,
                NodeKind::Dir,
            )))?;
            self.visit(root, &name, &md, None, em)?;
            em.event(TreeEvent::LeaveDir)
        }
    }

    fn walk_dir(
        &mut self,
        dir: &Path,
        node: Node,
        parent: Option<Tree>,
        em: &mut Em<'_, '_>,
    ) -> Result<()> {
        em.event(TreeEvent::EnterDir(node))?;
        let mut names: Vec<OsString> = match fs::read_dir(dir) {
            Ok(rd) => {
                let mut v = Vec::new();
                for ent in rd {
                    match ent {
                        Ok(ent) => v.push(ent.file_name()),
                        Err(e) => em.event(TreeEvent::Warning(format!(
                            "listing {}: {e}",
                            dir.display()
                        )))?,
                    }
                }
                v
            }
            Err(e) => {
                em.event(TreeEvent::Warning(format!(
                    "listing {}: {e}; stored as empty",
                    dir.display()
                )))?;
                Vec::new()
            }
        };
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let path = dir.join(&name);
            let md = match fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(e) => {
                    em.event(TreeEvent::Warning(format!(
                        "{}: {e}; skipped",
                        path.display()
                    )))?;
                    continue;
                }
            };
            let pnode = parent.as_ref().and_then(|t| {
                t.nodes
                    .binary_search_by(|n| n.name.0.as_slice().cmp(name.as_bytes()))
                    .ok()
                    .map(|i| &t.nodes[i])
            });
            self.visit(&path, name.as_bytes(), &md, pnode, em)?;
        }
        em.event(TreeEvent::LeaveDir)?;
        self.progress.item(&dir.to_string_lossy());
        Ok(())
    }

    fn visit(
        &mut self,
        path: &Path,
        name: &[u8],
        md: &Metadata,
        pnode: Option<&Node>,
        em: &mut Em<'_, '_>,
    ) -> Result<()> {
        let ft = md.file_type();
        if ft.is_dir() {
            let sub = match pnode
                .filter(|n| n.kind == NodeKind::Dir)
                .and_then(|n| n.subtree)
            {
                Some(id) => self.load_tree(&id, em)?,
                None => None,
            };
            self.walk_dir(path, node_from_metadata(name, md, NodeKind::Dir), sub, em)
        } else if ft.is_file() {
            let mut node = node_from_metadata(name, md, NodeKind::File);
            if let Some(p) = pnode {
                let same = p.kind == NodeKind::File
                    && p.size == node.size
                    && p.mtime_ns == node.mtime_ns
                    && p.ctime_ns == node.ctime_ns
                    && p.inode == node.inode;
                if same {
                    node.set_content(p.content());
                    self.progress.bytes(node.size);
                    self.progress.reused(node.size);
                    return em.event(TreeEvent::Leaf(node));
                }
            }
            let mut file = match File::open(path) {
                Ok(f) => f,
                Err(e) => {
                    return em.event(TreeEvent::Warning(format!(
                        "{}: {e}; skipped",
                        path.display()
                    )));
                }
            };
            em.event(TreeEvent::FileStart(node))?;
            self.chunker.reset();
            loop {
                let mut buf = self.buffers.take();
                match self.chunker.next_chunk_into(&mut file, &mut buf) {
                    Ok(true) => {
                        let weight = super::engine::weight_of(buf.len());
                        em.work_weighted(buf, weight)?
                    }
                    Ok(false) => break,
                    Err(e) => {
                        em.event(TreeEvent::Warning(format!(
                            "{}: {e}; stored as far as it was read",
                            path.display()
                        )))?;
                        break;
                    }
                }
            }
            em.event(TreeEvent::FileEnd)
        } else if ft.is_symlink() {
            match fs::read_link(path) {
                Ok(target) => {
                    let mut node = node_from_metadata(name, md, NodeKind::Symlink);
                    node.target = Some(RawName::from_os(target.as_os_str()));
                    em.event(TreeEvent::Leaf(node))
                }
                Err(e) => em.event(TreeEvent::Warning(format!(
                    "{}: {e}; skipped",
                    path.display()
                ))),
            }
        } else if ft.is_fifo() {
            em.event(TreeEvent::Leaf(node_from_metadata(
                name,
                md,
                NodeKind::Fifo,
            )))
        } else {
            let what = if ft.is_socket() {
                "socket"
            } else {
                "device file"
            };
            em.event(TreeEvent::Warning(format!(
                "{}: {what} skipped",
                path.display()
            )))
        }
    }
}

type StoreMeta<'a> = dyn FnMut(ObjectType, &[u8]) -> Result<BlobId> + 'a;
type StoreList<'a> = dyn FnMut(&[BlobId]) -> Result<BlobId> + 'a;

/// Consumer side: turns walk events into tree blobs, bottom-up.
#[derive(Default)]
pub struct TreeBuilder {
    stack: Vec<(Node, Vec<Node>)>,
    file: Option<(Node, ContentBuilder, u64)>,
    done: Option<Node>,
    size: u64,
}

impl TreeBuilder {
    pub fn chunk(&mut self, id: BlobId, len: u64, store_list: &mut StoreList<'_>) -> Result<()> {
        let (_, content, size) = self.file.as_mut().expect("chunk outside a file");
        *size += len;
        content.push_with(id, store_list)
    }

    pub fn event(
        &mut self,
        ev: TreeEvent,
        stats: &mut Stats,
        store_meta: &mut StoreMeta<'_>,
        store_list: &mut StoreList<'_>,
    ) -> Result<()> {
        match ev {
            TreeEvent::EnterDir(node) => self.stack.push((node, Vec::new())),
            TreeEvent::FileStart(node) => self.file = Some((node, ContentBuilder::default(), 0)),
            TreeEvent::FileEnd => {
                let (mut node, content, size) = self.file.take().expect("file end without start");
                node.set_content(content.finish_with(store_list)?);
                node.size = size;
                stats.files += 1;
                self.size += size;
                self.top().push(node);
            }
            TreeEvent::Leaf(node) => {
                if node.kind == NodeKind::File {
                    stats.files += 1;
                    stats.files_unchanged += 1;
                    self.size += node.size;
                }
                self.top().push(node);
            }
            TreeEvent::LeaveDir => {
                let (mut node, children) = self.stack.pop().expect("leave without enter");
                let id = store_meta(ObjectType::Tree, &encode_tree(children))?;
                node.subtree = Some(id);
                stats.dirs += 1;
                match self.stack.last_mut() {
                    Some((_, siblings)) => siblings.push(node),
                    None => self.done = Some(node),
                }
            }
            TreeEvent::Warning(_) => {}
        }
        Ok(())
    }

    fn top(&mut self) -> &mut Vec<Node> {
        &mut self.stack.last_mut().expect("node outside a directory").1
    }

    /// The root directory node, its tree id, and the bytes of all files.
    pub fn finish(self) -> Result<(Node, BlobId, u64)> {
        let root = self
            .done
            .ok_or_else(|| Error::other("the walk did not finish"))?;
        let id = root.subtree.expect("set at LeaveDir");
        Ok((root, id, self.size))
    }
}
