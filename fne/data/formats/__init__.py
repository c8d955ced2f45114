"""Dataset formats, one module each; importing this package registers them in detection order.

The image-folder format comes last: it accepts any folder of class subfolders, so the stricter layouts
(CIFAR-10 and CIFAR-100 pickles) are recognised first.
"""

from fne.data.formats import cifar10, cifar100, npz, imagefolder  # noqa: F401, I001 - order is detection order
