/**
 * faiss-node is not installed: its install script runs `prebuild-install`,
 * which downloads a prebuilt binary from GitHub, and falls back to
 * `git clone` of facebookresearch/faiss plus a cmake build. Machines here
 * reach only the npm registry and Debian's packages, so both fail and the
 * package cannot be installed; it is therefore not a devDependency.
 */
import type { SystemAdapter } from './types.js';

export const FAISS_REASON =
  'faiss-node 0.5.1 cannot be installed here: its install script downloads a prebuilt binary from GitHub (prebuild-install) ' +
  'and otherwise git-clones faiss and builds it with cmake; this network reaches only the npm registry, so both fail.';

export const faissAdapter: SystemAdapter = {
  key: 'faiss',
  label: 'faiss-node',
  indexKind: 'IndexHNSWFlat (not run)',
  batchMode: '-',
  async unavailable() {
    return FAISS_REASON;
  },
  async create() {
    throw new Error(FAISS_REASON);
  },
  async open() {
    throw new Error(FAISS_REASON);
  },
};
