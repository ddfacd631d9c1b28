"""``python -m pypool``: the worked example of the spec, and the build configuration."""

import numpy as np

import pypool

EXAMPLE = np.array([[1, 1, 2, 4],
                    [5, 6, 7, 8],
                    [3, 2, 1, 0],
                    [1, 2, 3, 4]], dtype=np.float64)


def main():
    np.set_printoptions(floatmode="maxprec")
    print("input (4x4):")
    print(EXAMPLE)
    print("\nmax_pool2d(x, 2, stride=2):")
    print(pypool.max_pool2d(EXAMPLE, 2, stride=2))
    print("\navg_pool2d(x, 2, stride=2):")
    print(pypool.avg_pool2d(EXAMPLE, 2, stride=2))
    print("\nglobal_avg_pool(x[None, None]):")
    print(pypool.global_avg_pool(EXAMPLE[None, None])[0, 0])
    print()
    pypool.show_config()


if __name__ == "__main__":
    main()
